"""The last minutes of each pool, for the live dashboard: a bounded ring of samples (pure).

Nothing here counts anything new. Once a second the shell (``live.py``) reads what the router
already counts into a ``PoolSample``: the pool's ``PoolAccount`` (requests finished, failed,
OOM answers, retries), the latency histogram behind ``asrpool_router_request_seconds``, and
the snapshot ``/stats`` shows (queue depth, slots in flight). ``History.series`` turns the
samples into what the plots draw, the way Prometheus would over the same counters:

    requests/s, OOMs/s   = increase over the trailing window / its length      (rate())
    p50, p95 latency     = quantile of the window's histogram increase  (histogram_quantile())
    queue depth, in flight = the sample's own value                            (a gauge)

A counter that goes down counts from zero, as a Prometheus counter reset does. The ring
holds ``capacity`` samples a pool, so memory is bounded whatever the uptime; a pool that is
no longer served is forgotten.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DIGITS = 4  # plotted values are rounded: a plot has no use for 1e-17, a JSON body no room

# (upper bound, cumulative count) pairs, increasing, the last one +Inf: a Prometheus histogram.
Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class PoolSample:
    """What one pool had counted at ``at`` (seconds on the caller's monotonic clock)."""

    at: float
    requests: int  # client requests finished, successful or not (cumulative)
    failed: int  # … of which failed (cumulative)
    ooms: int  # OOM answers from pods (cumulative)
    retries: int  # attempts retried after a failure, failovers included (cumulative)
    latency: Buckets  # end-to-end latency of successful requests (cumulative histogram)
    queue_depth: int  # requests waiting now
    in_flight: int  # slots in use now


@dataclass(frozen=True)
class Series:
    """One pool's plots, oldest point first; ``ago_s`` is each point's age (0 = the newest).

    A latency point is None when no request finished in its window: there is no latency to
    draw, and 0 would read as "instant"."""

    ago_s: tuple[float, ...]
    requests_per_s: tuple[float, ...]
    failed_per_s: tuple[float, ...]
    ooms_per_s: tuple[float, ...]
    retries_per_s: tuple[float, ...]
    p50_s: tuple[float | None, ...]
    p95_s: tuple[float | None, ...]
    queue_depth: tuple[int, ...]
    in_flight: tuple[int, ...]

    def as_dict(self) -> dict[str, list[float | None] | list[float] | list[int]]:
        return {
            "ago_s": list(self.ago_s),
            "requests_per_s": list(self.requests_per_s),
            "failed_per_s": list(self.failed_per_s),
            "ooms_per_s": list(self.ooms_per_s),
            "retries_per_s": list(self.retries_per_s),
            "p50_s": list(self.p50_s),
            "p95_s": list(self.p95_s),
            "queue_depth": list(self.queue_depth),
            "in_flight": list(self.in_flight),
        }


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' ``histogram_quantile``: linear within the bucket holding rank ``q``.

    None without observations. The lowest bucket starts at 0 (latencies are not negative);
    a rank in the +Inf bucket answers the highest finite bound, as Prometheus does."""
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be in [0, 1]")
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        if not math.isinf(bound):
            lower_bound = bound
        lower_count = count
    return lower_bound


def _increase(new: float, old: float) -> float:
    return new - old if new >= old else new  # a reset: the counter started again from 0


def _bucket_increase(new: Buckets, old: Buckets) -> Buckets:
    if [b for b, _ in new] != [b for b, _ in old]:
        return new  # other bounds (a new histogram): only the new one's counts are known
    if new and old and new[-1][1] < old[-1][1]:
        return new  # a reset
    return tuple((b, max(0.0, n - o)) for (b, n), (_, o) in zip(new, old, strict=True))


class History:
    """``capacity`` samples a pool, and the series the dashboard plots from them."""

    def __init__(self, capacity: int = 300, window_s: float = 10.0) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2 (a rate needs two samples)")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.capacity = capacity
        self.window_s = window_s
        self._rings: dict[str, deque[PoolSample]] = {}

    def record(self, model: str, sample: PoolSample) -> None:
        """Add the pool's newest sample (the oldest one falls out of a full ring)."""
        ring = self._rings.setdefault(model, deque(maxlen=self.capacity))
        if ring and sample.at <= ring[-1].at:
            raise ValueError("samples must come in time order")
        ring.append(sample)

    def keep_only(self, models: Iterable[str]) -> None:
        """Forget the pools not in ``models`` (no longer served)."""
        keep = set(models)
        for model in [m for m in self._rings if m not in keep]:
            del self._rings[model]

    def models(self) -> list[str]:
        return list(self._rings)

    def samples(self, model: str) -> list[PoolSample]:
        return list(self._rings.get(model, ()))

    def series(self, model: str) -> Series:
        """The pool's points, one a sample after the first (a rate needs a start)."""
        return series_of(self.samples(model), self.window_s)


def series_of(samples: Sequence[PoolSample], window_s: float) -> Series:
    """Points for ``samples[1:]``, each over the samples of its trailing ``window_s``."""
    if len(samples) < 2:
        return Series((), (), (), (), (), (), (), (), ())
    newest = samples[-1].at
    ago: list[float] = []
    rates: dict[str, list[float]] = {k: [] for k in _RATES}
    p50: list[float | None] = []
    p95: list[float | None] = []
    start = 0
    for i in range(1, len(samples)):
        now = samples[i]
        # The window's first sample: the oldest within window_s, never the point itself.
        while start < i - 1 and samples[start].at < now.at - window_s:
            start += 1
        then = samples[start]
        span = now.at - then.at
        ago.append(round(newest - now.at, 3))
        for key, attr in _RATES.items():
            rates[key].append(
                round(_increase(getattr(now, attr), getattr(then, attr)) / span, DIGITS)
            )
        window = _bucket_increase(now.latency, then.latency)
        p50.append(_rounded(histogram_quantile(0.5, window)))
        p95.append(_rounded(histogram_quantile(0.95, window)))
    return Series(
        ago_s=tuple(ago),
        requests_per_s=tuple(rates["requests_per_s"]),
        failed_per_s=tuple(rates["failed_per_s"]),
        ooms_per_s=tuple(rates["ooms_per_s"]),
        retries_per_s=tuple(rates["retries_per_s"]),
        p50_s=tuple(p50),
        p95_s=tuple(p95),
        queue_depth=tuple(s.queue_depth for s in samples[1:]),
        in_flight=tuple(s.in_flight for s in samples[1:]),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, DIGITS)


# Series field → the PoolSample counter it is the rate of.
_RATES = {
    "requests_per_s": "requests",
    "failed_per_s": "failed",
    "ooms_per_s": "ooms",
    "retries_per_s": "retries",
}
