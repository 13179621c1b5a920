"""The router's accounting: one sink for every count, exported on ``/metrics``.

``Accounting`` is built once by ``create_app``, on a registry it is given (never the global
one). It holds one ``logic.stats.PoolAccount`` a pool for the router's life, which the pool
itself writes (attempts' outcomes) and the app writes (how each request ended, answer-cache
lookups), plus the two latency histograms the runner observes. ``/stats`` reads the same
accounts (``PoolRunner.stats``); here a collector turns them into counters at scrape time,
beside the pool state (queue depth, budgets, the load integrals) read from the pools'
snapshots, so nothing is counted twice and nothing can drift. The families the operator's
autoscaler reads are named in ``asrpool_contract.metric_names``, the one home both sides
import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from asrpool_contract import metric_names as names

from .logic.pool import PoolSnapshot
from .logic.stats import PoolAccount

# Requests turned away before they had a pool (too large, not a form, an unknown model).
NO_POOL = "unknown"


class Accounting(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._accounts: dict[str, PoolAccount] = {}
        self._refused = PoolAccount()
        self._snapshots: Callable[[], Iterable[PoolSnapshot]] = list
        self._queue_wait = Histogram(
            "asrpool_router_queue_wait_seconds",
            "Time a request waited for a slot.",
            ["pool"],
            registry=registry,
            buckets=(0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )
        self._latency = Histogram(
            "asrpool_router_request_seconds",
            "End-to-end latency of successful requests.",
            ["pool"],
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
        )
        # Read at scrape time from the session slots (create_app sets the function).
        self.sessions_open = Gauge(
            "asrpool_router_sessions_open",
            "Live transcription sessions (WebSockets) open now.",
            registry=registry,
        )
        registry.register(self)

    def account(self, model: str) -> PoolAccount:
        """The pool's account: the same one for the router's life (a pool made again after
        its ASRPool came back keeps counting, as its Prometheus counters would)."""
        return self._accounts.setdefault(model, PoolAccount())

    def finished(self, model: str | None, code: str) -> None:
        """A client request ended: "ok", "cancelled" or the error code it was answered with;
        ``model`` None when it was refused before it had a pool."""
        (self._refused if model is None else self.account(model)).finished(code)

    def waited(self, model: str, seconds: float) -> None:
        """A request got its first slot after ``seconds`` in the queue (0: at once)."""
        self._queue_wait.labels(model).observe(seconds)

    def answered(self, model: str, seconds: float) -> None:
        """A pod answered a request ``seconds`` after it asked for a slot."""
        self._latency.labels(model).observe(seconds)

    def latency_buckets(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """Each pool's cumulative latency histogram, (upper bound, count) pairs in order."""
        out: dict[str, list[tuple[float, float]]] = {}
        for family in self._latency.collect():
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    out.setdefault(s.labels["pool"], []).append((float(s.labels["le"]), s.value))
        return {pool: tuple(sorted(b)) for pool, b in out.items()}

    def ooms_by_pod(self) -> dict[str, dict[str, int]]:
        """OOM answers counted so far, pool → pod → count."""
        return {model: dict(a.ooms) for model, a in self._accounts.items() if a.ooms}

    def watch_pools(self, snapshots: Callable[[], Iterable[PoolSnapshot]]) -> None:
        """Where the pools' state is read at scrape time (create_app sets it)."""
        self._snapshots = snapshots

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """What a scrape reads: the accounts as counters, the pools' state as of now."""
        yield from self._counts()
        yield from self._pool_state()

    def _counts(self) -> Iterator[CounterMetricFamily]:
        requests = CounterMetricFamily(
            "asrpool_router_requests",
            "Client requests by pool and final code.",
            labels=["pool", "code"],
        )
        retries = CounterMetricFamily(
            "asrpool_router_retries",
            "Attempts retried, by the failed attempt's reason and how (failover or requeue).",
            labels=["pool", "reason", "how"],
        )
        oom = CounterMetricFamily(
            "asrpool_router_oom", "Out-of-memory answers from pods.", labels=["pool", "pod"]
        )
        cache = CounterMetricFamily(
            "asrpool_router_cache",
            "Answers looked up in the cache of identical requests, by hit or miss.",
            labels=["pool", "result"],
        )
        ejections = CounterMetricFamily(
            "asrpool_router_ejections",
            "Pods taken out of rotation, by the fault that did it.",
            labels=["pool", "reason"],
        )
        gave_up = CounterMetricFamily(
            "asrpool_router_gave_up",
            "Requests that failed after attempts, by why no retry followed.",
            labels=["pool", "reason"],
        )
        for model, a in [*self._accounts.items(), (NO_POOL, self._refused)]:
            for family, table in (
                (requests, a.requests),
                (oom, a.ooms),
                (cache, a.lookups),
                (ejections, a.ejections),
                (gave_up, a.give_ups),
            ):
                for key, n in table.items():
                    family.add_metric([model, key], n)
            for (reason, how), n in a.retries.items():
                retries.add_metric([model, reason, how], n)
        yield from (requests, retries, oom, cache, ejections, gave_up)

    def _pool_state(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        depth = GaugeMetricFamily(names.QUEUE_DEPTH, "Requests waiting.", labels=["pool"])
        # Its own family: the operator sums asrpool_router_queue_depth over all its series.
        by_priority = GaugeMetricFamily(
            "asrpool_router_queue_depth_by_priority",
            "Requests waiting, by priority class (realtime, interactive, batch).",
            labels=["pool", "priority"],
        )
        budget = GaugeMetricFamily(
            "asrpool_router_pod_budget",
            "Concurrent requests each pod may take now.",
            labels=["pool", "pod"],
        )
        # Read from the pool at scrape time, so a pod that leaves takes its series with it.
        # The operator's autoscaler reads this family: keep its name and labels.
        in_flight = GaugeMetricFamily(
            names.IN_FLIGHT, "Attempts running on each pod.", labels=["pool", "pod"]
        )
        # Integrals over time, so the autoscaler takes exact rates over any window it likes.
        busy = CounterMetricFamily(
            names.BUSY_SLOT_SECONDS,
            "Slot-seconds in flight: the integral of attempts running over time.",
            labels=["pool"],
        )
        queued = CounterMetricFamily(
            names.QUEUED_SECONDS,
            "Request-seconds waiting: the integral of the queue depth over time.",
            labels=["pool"],
        )
        ejected = GaugeMetricFamily(
            "asrpool_router_pod_ejected",
            "1 while a pod is out of rotation by outlier ejection.",
            labels=["pool", "pod"],
        )
        for snap in self._snapshots():
            depth.add_metric([snap.model], snap.queue_depth)
            busy.add_metric([snap.model], snap.busy_slot_seconds)
            queued.add_metric([snap.model], snap.queued_seconds)
            for priority, n in snap.queue_by_priority.items():
                by_priority.add_metric([snap.model, priority], n)
            for pod in snap.pods:
                budget.add_metric([snap.model, pod.id], pod.budget)
                in_flight.add_metric([snap.model, pod.id], pod.in_flight)
                ejected.add_metric([snap.model, pod.id], 1.0 if pod.ejected else 0.0)
        yield from (depth, by_priority, budget, in_flight, ejected, busy, queued)
