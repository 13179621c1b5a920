"""What ``/stats``, ``/stats/live`` (the dashboard, ``asrpool status --watch``) answer.

``stats_body`` is the ``/stats`` body, built in this one place so the dashboard can never
show other numbers than ``/stats``. ``LiveView`` adds what a picture of the pool needs:
live sessions, OOM answers per pod (the ``asrpool_router_oom`` counter), and the last
minutes of each pool, sampled once a second by ``run`` into a ``logic.history.History`` from
what the router already counts (its ``RequestStats``, the latency histogram, the pools'
snapshots). ``create_app`` builds one and runs its sampler for the app's lifetime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .dispatch import PoolRunner
from .logic.history import History, PoolSample
from .logic.session_slots import SessionSlots
from .logic.stats import merge
from .metrics import RouterMetrics
from .pools import PoolRegistry

SAMPLE_PERIOD_S = 1.0
HISTORY_SAMPLES = 300  # five minutes at one sample a second
RATE_WINDOW_S = 10.0  # each plotted rate or quantile covers the last 10 s, as rate(…[10s])


def stats_body(runners: list[PoolRunner]) -> dict[str, Any]:
    """``GET /stats``: totals over every pool, then each pool and its pods."""
    pools = [r.snapshot() for r in runners]
    total = merge([r.stats for r in runners])
    return {
        **total.view(
            max_concurrent=sum(int(p["max_concurrent"]) for p in pools),  # type: ignore[call-overload]
            active_tasks=sum(int(p["active_tasks"]) for p in pools),  # type: ignore[call-overload]
        ),
        "queue_depth": sum(int(p["queue_depth"]) for p in pools),  # type: ignore[call-overload]
        "pools": pools,
    }


class LiveView:
    """The dashboard's one source: ``body()``, and the sampler that keeps its history."""

    def __init__(
        self,
        pools: PoolRegistry,
        metrics: RouterMetrics,
        sessions: SessionSlots,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pools = pools
        self.metrics = metrics
        self.sessions = sessions
        self.clock = clock
        self.history = History(capacity=HISTORY_SAMPLES, window_s=RATE_WINDOW_S)

    def sample(self) -> None:
        """One sample of every pool now (the sampler calls it once a second)."""
        now = self.clock()
        runners = self.pools.runners()
        latency = self.metrics.latency_buckets()
        for runner in runners:
            snap = runner.snapshot()
            self.history.record(
                runner.model,
                PoolSample(
                    at=now,
                    requests=runner.stats.total_tasks,
                    failed=runner.stats.failed_tasks,
                    ooms=runner.stats.oom_errors,
                    retries=sum(runner.stats.retries.values()),
                    latency=latency.get(runner.model, ()),
                    queue_depth=int(snap["queue_depth"]),  # type: ignore[call-overload]
                    in_flight=int(snap["active_tasks"]),  # type: ignore[call-overload]
                ),
            )
        self.history.keep_only(r.model for r in runners)

    async def run(self, period_s: float = SAMPLE_PERIOD_S) -> None:
        """Sample every ``period_s`` until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(period_s)

    def body(self) -> dict[str, Any]:
        """``GET /stats/live``: ``/stats``, sessions, OOMs per pod, and the last minutes."""
        return {
            "stats": stats_body(self.pools.runners()),
            "sessions": {
                "open": self.sessions.open_total,
                "max": self.sessions.max_total,
                "max_per_key": self.sessions.max_per_key,
            },
            "ooms_by_pod": self.metrics.ooms_by_pod(),
            "history": {
                "period_s": SAMPLE_PERIOD_S,
                "window_s": self.history.window_s,
                "pools": {m: self.history.series(m).as_dict() for m in self.history.models()},
            },
        }
