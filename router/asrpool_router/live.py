"""What ``/stats``, ``/stats/live`` (the dashboard, ``asrpool status --watch``) answer.

``stats_body`` is the ``/stats`` body (a frozen ``logic.stats.RouterStats``; the routes
turn it into JSON), built in this one place so the dashboard can never show other numbers
than ``/stats``. ``LiveView`` adds what a picture of the pool needs: live sessions, OOM
answers per pod, and the last minutes of each pool, sampled once a second by ``run`` into a
``logic.history.History`` from what the router already counts (the pools' accounts and
snapshots, the latency histogram). ``create_app`` builds one and runs its sampler for the
app's lifetime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .dispatch import PoolRunner
from .logic.history import History, PoolSample
from .logic.session_slots import SessionSlots
from .logic.stats import RouterStats, router_stats
from .metrics import Accounting
from .pools import PoolRegistry

SAMPLE_PERIOD_S = 1.0
HISTORY_SAMPLES = 300  # five minutes at one sample a second
RATE_WINDOW_S = 10.0  # each plotted rate or quantile covers the last 10 s, as rate(…[10s])


def stats_body(runners: list[PoolRunner]) -> RouterStats:
    """``GET /stats``: totals over every pool, then each pool and its pods."""
    return router_stats([r.stats() for r in runners])


class LiveView:
    """The dashboard's one source: ``body()``, and the sampler that keeps its history."""

    def __init__(
        self,
        pools: PoolRegistry,
        accounting: Accounting,
        sessions: SessionSlots,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pools = pools
        self.accounting = accounting
        self.sessions = sessions
        self.clock = clock
        self.history = History(capacity=HISTORY_SAMPLES, window_s=RATE_WINDOW_S)

    def sample(self) -> None:
        """One sample of every pool now (the sampler calls it once a second)."""
        now = self.clock()
        runners = self.pools.runners()
        latency = self.accounting.latency_buckets()
        for runner in runners:
            stats = runner.stats()
            self.history.record(
                runner.model,
                PoolSample(
                    at=now,
                    requests=stats.total_tasks,
                    failed=stats.failed_tasks,
                    ooms=stats.oom_errors,
                    retries=sum(stats.retries.values()),
                    latency=latency.get(runner.model, ()),
                    queue_depth=stats.queue_depth,
                    in_flight=stats.active_tasks,
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
            "stats": asdict(stats_body(self.pools.runners())),
            "sessions": {
                "open": self.sessions.open_total,
                "max": self.sessions.max_total,
                "max_per_key": self.sessions.max_per_key,
            },
            "ooms_by_pod": self.accounting.ooms_by_pod(),
            "history": {
                "period_s": SAMPLE_PERIOD_S,
                "window_s": self.history.window_s,
                "pools": {m: self.history.series(m).as_dict() for m in self.history.models()},
            },
        }
