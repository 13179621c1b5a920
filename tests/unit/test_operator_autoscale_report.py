"""The autoscaler's situation → the Autoscaling condition, status.autoscaling and Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asrpool_operator.logic.autoscale import (
    HELD_GPU,
    HELD_METRICS_INCOMPLETE,
    HELD_NO_METRICS,
    Memory,
    ScaleDecision,
)
from asrpool_operator.logic.autoscale_report import AutoscalerReport, LastScale, report
from asrpool_operator.logic.capacity import Capacity
from asrpool_operator.logic.status import Observation, pool_status, status_events, status_patch

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def decision(held: str | None = None, panic: bool = False) -> ScaleDecision:
    return ScaleDecision(4, "Unchanged", "4 pods", Memory(), 4, panic, held)


def rep(**kw: Any) -> AutoscalerReport:
    args: dict[str, Any] = dict(
        enabled=True, replicas=4, decision=decision(), pods=Capacity(ready=4),
        gpu_resource="nvidia.com/gpu",
    )  # fmt: skip
    return report(**{**args, **kw})


REPORTS = [
    ("following the load", rep(), "Active", True),
    ("an hpa aims at the pool", rep(external=["keda-hpa-large-v3"], decision=None),
     "ExternalScaler", False),
    ("disabled, the hpa scales", rep(enabled=False, external=["h"], decision=None), "Disabled",
     False),
    ("no router answered", rep(decision=decision(HELD_NO_METRICS)), "NoMetrics", False),
    ("pods wait for gpus", rep(decision=decision(HELD_GPU), pods=Capacity(3, 1, 1)),
     "InsufficientGPU", True),
    ("a router is missing", rep(decision=decision(HELD_METRICS_INCOMPLETE), missing=["r-2"]),
     "MetricsIncomplete", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("got", "reason", "active"), [r[1:] for r in REPORTS], ids=[r[0] for r in REPORTS]
)
def test_the_condition_says_who_sets_replicas_and_what_holds_it_back(
    got: AutoscalerReport, reason: str, active: bool
) -> None:
    assert (got.reason, got.active) == (reason, active)


def test_messages_name_what_to_do_and_how_many() -> None:
    hpa = rep(external=["keda-hpa-large-v3"], decision=None)
    assert hpa.message.startswith("HorizontalPodAutoscaler keda-hpa-large-v3 also scales this")
    assert "spec.autoscaling.enabled: false" in hpa.message
    gpu = rep(decision=decision(HELD_GPU), pods=Capacity(3, 2, 2))
    assert gpu.message == (
        "2 pods wait for a free nvidia.com/gpu and are not counted as capacity: growth held "
        "at 4 pods"
    )
    missing = rep(decision=decision(HELD_METRICS_INCOMPLETE), missing=["r-2"])
    assert missing.message.startswith("router r-2 did not answer: scaling on the others' load")


def observe(previous: dict[str, Any], report: AutoscalerReport | None) -> dict[str, Any]:
    obs = Observation(generation=3, desired_replicas=4, autoscaled=True, autoscaler=report)
    return pool_status(obs, "large-v3", previous, NOW)


def autoscaling_condition(status: dict[str, Any]) -> dict[str, Any]:
    (c,) = [c for c in status["conditions"] if c["type"] == "Autoscaling"]
    return c


LAST = LastScale("2026-03-01T11:59:00Z", "ScaledUp", "2 → 4 pods: …")


def test_status_carries_the_condition_the_mode_and_the_last_change() -> None:
    status = observe({}, AutoscalerReport("Active", "follows", True, True, LAST))
    assert status["autoscaling"] == {
        "mode": "Panic",
        "lastScale": {"time": LAST.time, "reason": "ScaledUp", "message": "2 → 4 pods: …"},
    }
    c = autoscaling_condition(status)
    assert (c["status"], c["reason"], c["message"]) == ("True", "Active", "follows")


def test_a_pool_without_autoscaling_has_neither() -> None:
    status = pool_status(Observation(generation=1, desired_replicas=1), "x", {}, NOW)
    assert "autoscaling" not in status
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Degraded", "Scaling"]


def test_until_the_autoscaler_reports_the_status_keeps_what_it_said() -> None:
    before = observe({}, AutoscalerReport("InsufficientGPU", "2 pods wait", True, False, LAST))
    after_restart = observe(before, None)
    assert status_patch(before, after_restart) is None
    # A report without a last change (a restarted operator) keeps the one status shows.
    again = observe(before, AutoscalerReport("InsufficientGPU", "2 pods wait", True))
    assert again["autoscaling"]["lastScale"]["reason"] == "ScaledUp"


def test_being_held_back_is_a_warning_and_following_again_a_normal_event() -> None:
    active = observe({}, AutoscalerReport("Active", "follows", True))
    assert status_events({}, active) == []  # a new pool's autoscaler starting
    missing = observe(active, AutoscalerReport("MetricsIncomplete", "router r-2 …", True))
    assert [(e.type, e.reason) for e in status_events(active, missing)] == [
        ("Warning", "MetricsIncomplete")
    ]
    still = observe(missing, AutoscalerReport("MetricsIncomplete", "router r-2 …", True))
    assert status_events(missing, still) == []
    back = observe(missing, AutoscalerReport("Active", "follows", True))
    assert [(e.type, e.reason) for e in status_events(missing, back)] == [
        ("Normal", "AutoscalingActive")
    ]


def test_an_external_scaler_is_refused_with_a_warning() -> None:
    active = observe({}, AutoscalerReport("Active", "follows", True))
    refused = observe(active, rep(external=["h"], decision=None))
    (event,) = status_events(active, refused)
    assert (event.type, event.reason) == ("Warning", "ExternalScaler")
    assert autoscaling_condition(refused)["status"] == "False"
