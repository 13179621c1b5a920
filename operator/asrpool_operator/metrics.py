"""The operator's Prometheus metrics: what its autoscaler read, decided and why, pool by pool.

On a registry the operator is given (``main.py`` makes one and serves it on
``--metrics-port``); ``Autoscaler`` records every period of every autoscaled pool. The
labels follow kube-state-metrics: ``namespace`` and ``asrpool`` name the ASRPool, ``pool`` is
its model, the routers' ``pool`` label, so a dashboard can put the routers' load beside the
decision it led to. (The chart's PodMonitor keeps these labels with ``honorLabels``:
``namespace`` is the pool's, not the operator pod's.) A pool that goes, or stops being
autoscaled, takes its series with it.
"""

from __future__ import annotations

import contextlib
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge

from .logic.autoscale import Observed, ScaleDecision
from .logic.autoscale_report import AutoscalerReport
from .logic.spec import Pool

_POOL = ["namespace", "asrpool", "pool"]
# The loads a decision weighs: averaged over the stable and panic windows, and the latest.
WINDOWS = ("stable", "panic", "latest")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.replicas = Gauge(
            "asrpool_operator_autoscale_replicas",
            "Worker replicas the autoscaler gives the pool (its latest decision).",
            _POOL,
            registry=registry,
        )
        self.wanted = Gauge(
            "asrpool_operator_autoscale_wanted_replicas",
            "Replicas the load asks for, within min and max, before the rate limits and holds.",
            _POOL,
            registry=registry,
        )
        self.decisions = Counter(
            "asrpool_operator_autoscale_decisions",
            "Autoscaling decisions by reason: ScaledUp, ScaledDown, Unchanged, OutOfRange.",
            [*_POOL, "reason"],
            registry=registry,
        )
        self.condition = Gauge(
            "asrpool_operator_autoscale_condition",
            "1 for the reason the pool's Autoscaling condition gives now (Active, NoMetrics, "
            "InsufficientGPU, MetricsIncomplete, Disabled, ExternalScaler), else absent.",
            [*_POOL, "reason"],
            registry=registry,
        )
        self.panic = Gauge(
            "asrpool_operator_autoscale_panic",
            "1 while the pool scales on its short panic window (a burst), else 0.",
            _POOL,
            registry=registry,
        )
        self.in_flight = Gauge(
            "asrpool_operator_autoscale_in_flight",
            "Requests in flight on the pool's pods, summed over the routers, as the autoscaler "
            "weighed them: averaged over its stable or panic window, or the latest scrape.",
            [*_POOL, "window"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "asrpool_operator_autoscale_queue_depth",
            "Requests queued for the pool, summed over the routers, as the autoscaler weighed "
            "them: averaged over its stable or panic window, or the latest scrape.",
            [*_POOL, "window"],
            registry=registry,
        )
        # The series each pool has, to remove them when it goes (one lock: the autoscaler's
        # thread records, kopf's handler threads may forget).
        self._lock = threading.Lock()
        self._labels: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._reasons: dict[tuple[str, str], set[str]] = {}
        self._condition: dict[tuple[str, str], str] = {}

    def observe(
        self,
        pool: Pool,
        report: AutoscalerReport,
        decision: ScaleDecision | None,
        observed: Observed | None,
    ) -> None:
        """One period of an autoscaled pool: the condition, and the decision if there was one
        (None: disabled, or an external scaler), on ``observed`` (None: no load known)."""
        key = (pool.ref.namespace, pool.ref.name)
        labels = (pool.ref.namespace, pool.ref.name, pool.spec.model)
        with self._lock:
            if self._labels.get(key, labels) != labels:
                self._forget(key)  # the pool's model changed: its old series go
            self._labels[key] = labels
            previous = self._condition.get(key)
            if previous is not None and previous != report.reason:
                _drop(self.condition, *labels, previous)
            self._condition[key] = report.reason
            if decision is not None:
                self._reasons.setdefault(key, set()).add(decision.reason)
        self.condition.labels(*labels, report.reason).set(1)
        self.panic.labels(*labels).set(1 if report.panic else 0)
        if decision is None:
            self.replicas.labels(*labels).set(pool.spec.replicas)
            _drop(self.wanted, *labels)
        else:
            self.replicas.labels(*labels).set(decision.replicas)
            self.wanted.labels(*labels).set(decision.wanted)
            self.decisions.labels(*labels, decision.reason).inc()
        for window in WINDOWS:
            load = getattr(observed, window) if observed is not None else None
            for gauge, value in (
                (self.in_flight, load.in_flight if load else None),
                (self.queue_depth, load.queue_depth if load else None),
            ):
                if value is None:  # unknown is no series, not 0
                    _drop(gauge, *labels, window)
                else:
                    gauge.labels(*labels, window).set(value)

    def forget(self, namespace: str, name: str) -> None:
        """The pool is gone, or no longer autoscaled: its series go with it."""
        with self._lock:
            self._forget((namespace, name))

    def _forget(self, key: tuple[str, str]) -> None:
        labels = self._labels.pop(key, None)
        if labels is None:
            return
        for gauge in (self.replicas, self.wanted, self.panic):
            _drop(gauge, *labels)
        for gauge in (self.in_flight, self.queue_depth):
            for window in WINDOWS:
                _drop(gauge, *labels, window)
        for reason in self._reasons.pop(key, set()):
            _drop(self.decisions, *labels, reason)
        condition = self._condition.pop(key, None)
        if condition is not None:
            _drop(self.condition, *labels, condition)


def _drop(metric: Gauge | Counter, *labels: str) -> None:
    """Remove one series if it is there (older prometheus_client raise KeyError if not)."""
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
