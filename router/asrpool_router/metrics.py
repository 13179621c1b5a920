"""The router's Prometheus metrics, on a registry the app is given (never the global one).

Counters and histograms are updated where things happen; pool state (queue
depth, budgets, the load integrals) is read from the pools at scrape time by a
collector, so it can never drift from the truth. The families the operator's
autoscaler reads are named in ``asrpool_contract.metric_names``, the one home both sides import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from asrpool_contract import metric_names as names


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "asrpool_router_requests",
            "Client requests by pool and final code.",
            ["pool", "code"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "asrpool_router_queue_wait_seconds",
            "Time a request waited for a slot.",
            ["pool"],
            registry=registry,
            buckets=(0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )
        self.retries = Counter(
            "asrpool_router_retries",
            "Attempts retried, by the failed attempt's reason and how (failover or backoff).",
            ["pool", "reason", "how"],
            registry=registry,
        )
        self.oom = Counter(
            "asrpool_router_oom",
            "Out-of-memory answers from pods.",
            ["pool", "pod"],
            registry=registry,
        )
        self.cache = Counter(
            "asrpool_router_cache",
            "Answers looked up in the cache of identical requests, by hit or miss.",
            ["pool", "result"],
            registry=registry,
        )
        self.latency = Histogram(
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

    def latency_buckets(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """Each pool's cumulative latency histogram, (upper bound, count) pairs in order."""
        out: dict[str, list[tuple[float, float]]] = {}
        for family in self.latency.collect():
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    out.setdefault(s.labels["pool"], []).append((float(s.labels["le"]), s.value))
        return {pool: tuple(sorted(b)) for pool, b in out.items()}

    def ooms_by_pod(self) -> dict[str, dict[str, int]]:
        """OOM answers counted so far, pool → pod → count."""
        out: dict[str, dict[str, int]] = {}
        for family in self.oom.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    out.setdefault(s.labels["pool"], {})[s.labels["pod"]] = int(s.value)
        return out

    def watch_pools(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.registry.register(_PoolCollector(snapshots))


class _PoolCollector(Collector):
    def __init__(self, snapshots: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
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
        for snap in self._snapshots():
            depth.add_metric([snap["model"]], snap["queue_depth"])
            busy.add_metric([snap["model"]], snap["busy_slot_seconds"])
            queued.add_metric([snap["model"]], snap["queued_seconds"])
            for priority, n in snap["queue_by_priority"].items():
                by_priority.add_metric([snap["model"], priority], n)
            for pod in snap["pods"]:
                budget.add_metric([snap["model"], pod["id"]], pod["budget"])
                in_flight.add_metric([snap["model"], pod["id"]], pod["in_flight"])
                ejected.add_metric([snap["model"], pod["id"]], 1.0 if pod["ejected"] else 0.0)
            for reason, n in snap["totals"]["ejections"].items():
                ejections.add_metric([snap["model"], reason], n)
            for reason, n in snap["totals"]["gave_up"].items():
                gave_up.add_metric([snap["model"], reason], n)
        yield depth
        yield by_priority
        yield budget
        yield in_flight
        yield ejected
        yield ejections
        yield gave_up
        yield busy
        yield queued
