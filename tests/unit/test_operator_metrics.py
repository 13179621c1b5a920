"""The operator's own metrics (asrpool_operator.metrics): each autoscaling period, and series
that go with their pool."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from asrpool_operator.logic.autoscale import Memory, Observed, PoolLoad, ScaleDecision
from asrpool_operator.logic.autoscale_report import AutoscalerReport
from asrpool_operator.logic.spec import OperatorDefaults, Pool, parse_pool
from asrpool_operator.metrics import OperatorMetrics


def pool(model: str = "tiny.en", replicas: int = 1) -> Pool:
    obj: dict[str, Any] = {
        "metadata": {"name": "tiny-en", "namespace": "speech", "uid": "u1"},
        "spec": {
            "model": model,
            "replicas": replicas,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 6},
        },
    }
    return parse_pool(obj, OperatorDefaults(worker_image="ghcr.io/asrpool/worker:0.1.0"))


def decision(replicas: int, reason: str, wanted: int) -> ScaleDecision:
    return ScaleDecision(replicas, reason, "…", Memory(), wanted=wanted)


LOAD = Observed(
    stable=PoolLoad(in_flight=2.5, queue_depth=1.0),
    panic=PoolLoad(in_flight=4.0, queue_depth=9.0),
    latest=PoolLoad(in_flight=4.0, queue_depth=8.0),
)


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    at = {"namespace": "speech", "asrpool": "tiny-en", "pool": "tiny.en", **labels}
    return reg.get_sample_value(name, at)


def test_a_period_records_the_load_weighed_the_decision_and_the_condition() -> None:
    reg = CollectorRegistry()
    metrics = OperatorMetrics(reg)
    metrics.observe(
        pool(), AutoscalerReport("Active", "…", True, panic=True), decision(5, "ScaledUp", 7), LOAD
    )
    assert value(reg, "asrpool_operator_autoscale_replicas") == 5
    assert value(reg, "asrpool_operator_autoscale_wanted_replicas") == 7
    assert value(reg, "asrpool_operator_autoscale_decisions_total", reason="ScaledUp") == 1
    assert value(reg, "asrpool_operator_autoscale_condition", reason="Active") == 1
    assert value(reg, "asrpool_operator_autoscale_panic") == 1
    assert value(reg, "asrpool_operator_autoscale_in_flight", window="stable") == 2.5
    assert value(reg, "asrpool_operator_autoscale_queue_depth", window="panic") == 9
    assert value(reg, "asrpool_operator_autoscale_queue_depth", window="latest") == 8

    # The routers went quiet: the condition moves, the load is unknown (no series, not 0).
    metrics.observe(
        pool(replicas=5), AutoscalerReport("NoMetrics", "…", False), decision(5, "Unchanged", 5),
        None,
    )  # fmt: skip
    assert value(reg, "asrpool_operator_autoscale_condition", reason="Active") is None
    assert value(reg, "asrpool_operator_autoscale_condition", reason="NoMetrics") == 1
    assert value(reg, "asrpool_operator_autoscale_in_flight", window="stable") is None
    assert value(reg, "asrpool_operator_autoscale_decisions_total", reason="Unchanged") == 1
    assert value(reg, "asrpool_operator_autoscale_panic") == 0


def test_no_decision_keeps_the_replicas_and_drops_what_the_load_asked() -> None:
    reg = CollectorRegistry()
    metrics = OperatorMetrics(reg)
    metrics.observe(pool(), AutoscalerReport("Active", "…", True), decision(2, "ScaledUp", 2), LOAD)
    metrics.observe(pool(replicas=2), AutoscalerReport("ExternalScaler", "…", False), None, None)
    assert value(reg, "asrpool_operator_autoscale_replicas") == 2
    assert value(reg, "asrpool_operator_autoscale_wanted_replicas") is None
    assert value(reg, "asrpool_operator_autoscale_condition", reason="ExternalScaler") == 1


def test_series_go_with_their_pool_and_follow_a_new_model() -> None:
    reg = CollectorRegistry()
    metrics = OperatorMetrics(reg)
    active = AutoscalerReport("Active", "…", True)
    metrics.observe(pool(), active, decision(1, "Unchanged", 1), LOAD)
    metrics.observe(pool(model="base.en"), active, decision(1, "Unchanged", 1), LOAD)
    assert value(reg, "asrpool_operator_autoscale_replicas") is None
    assert value(reg, "asrpool_operator_autoscale_replicas", pool="base.en") == 1
    metrics.forget("speech", "tiny-en")
    left = [(m.name, s.labels) for m in reg.collect() for s in m.samples]
    assert left == []  # a deleted pool leaves no stale series
    metrics.forget("speech", "never-seen")  # harmless
