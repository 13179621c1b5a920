"""Each router's samples over time → a pool's load averaged over a window (pure).

The autoscaler scrapes every ready router once a period and records what each said
(``LoadHistory.record``). The routers' counters are integrals of the two levels (slots in
flight, requests queued), so the average of a level over a window is a difference quotient
of two samples: exact whatever the scrape period, and it sees the bursts between two scrapes
that a gauge sampled at those instants would miss::

    average over [now - W, now] = (C(newest) - C(base)) / (t(newest) - t(base))
    base = the newest sample at or before now - W, else the oldest one kept

A router that has answered once, restarted since the base (its counter went down) or exports
no counters contributes its gauges instead. Only routers that answered the latest scrape
count; one that did not is listed in ``missing`` (the autoscaler then never shrinks), and
samples older than the horizon are forgotten. Routers share nothing, so a pool's load is the
sum over them. Time is the caller's monotonic clock, given to ``record``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .autoscale import PoolLoad
from .router_metrics import PoolSample


@dataclass(frozen=True)
class _Point:
    at: float
    sample: PoolSample


class LoadHistory:
    """The recent samples of every (router, pool); read by the autoscaler shell."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], list[_Point]] = {}  # oldest first
        self._answered: frozenset[str] = frozenset()
        self.missing: tuple[str, ...] = ()
        self._now: float | None = None

    def record(
        self,
        now: float,
        pages: Mapping[str, Mapping[str, PoolSample]],
        missing: Iterable[str] = (),
        horizon_s: float = 3600.0,
    ) -> None:
        """What each router that answered said at ``now`` (router name → pool → sample), and
        the ready routers that did not answer."""
        for router, page in pages.items():
            for pool, sample in page.items():
                self._series.setdefault((router, pool), []).append(_Point(now, sample))
        self._answered = frozenset(pages)
        self.missing = tuple(sorted(missing))
        self._now = now
        cutoff = now - horizon_s
        for key, points in list(self._series.items()):
            if points[-1].at < cutoff:
                del self._series[key]  # the router, or the pool, is gone
                continue
            # Keep one point at or before the cutoff: the base of the longest window.
            older = bisect.bisect_right([p.at for p in points], cutoff)
            if older > 1:
                del points[: older - 1]

    def window(self, pool: str, window_s: float) -> PoolLoad:
        """The pool's average load over the last ``window_s`` seconds, over the routers that
        answered the latest scrape."""
        in_flight = queued = 0.0
        for points in self._current(pool):
            newest = points[-1]
            times = [p.at for p in points]
            i = bisect.bisect_right(times, newest.at - window_s) - 1
            base = points[max(i, 0)]
            in_flight += _average(base, newest, "busy_slot_seconds", newest.sample.in_flight)
            queued += _average(base, newest, "queued_seconds", newest.sample.queue_depth)
        return PoolLoad(in_flight=in_flight, queue_depth=queued)

    def latest(self, pool: str) -> PoolLoad:
        """The pool's load at the latest scrape (the gauges)."""
        samples = [points[-1].sample for points in self._current(pool)]
        return PoolLoad(
            in_flight=sum(s.in_flight for s in samples),
            queue_depth=sum(s.queue_depth for s in samples),
        )

    def pods(self, pool: str) -> dict[str, float]:
        """Attempts in flight on each of the pool's pods at the latest scrape."""
        out: dict[str, float] = {}
        for points in self._current(pool):
            for pod, n in points[-1].sample.pods.items():
                out[pod] = out.get(pod, 0.0) + n
        return out

    def _current(self, pool: str) -> list[list[_Point]]:
        return [
            points
            for (router, p), points in self._series.items()
            if p == pool and router in self._answered and points[-1].at == self._now
        ]


def _average(base: _Point, newest: _Point, counter: str, gauge: float) -> float:
    before = getattr(base.sample, counter)
    after = getattr(newest.sample, counter)
    span = newest.at - base.at
    if before is None or after is None or span <= 0 or after < before:
        return gauge  # one sample, no counters, or the router restarted: what it says now
    return float(after - before) / span
