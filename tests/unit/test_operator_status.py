"""Observed Deployment + pods → the pool's status, its conditions and the Events they deserve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asrpool_operator.logic.autoscale import PoolLoad
from asrpool_operator.logic.status import (
    Diagnosis,
    Event,
    Observation,
    diagnose,
    pool_status,
    status_events,
    status_patch,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
EARLIER = "2026-03-01T11:00:00Z"


def pod(
    name: str = "large-v3-worker-abc-1",
    *,
    waiting: str | None = None,
    waiting_message: str = "",
    terminated: str | None = None,
    last_terminated: str | None = None,
    finished: datetime | None = None,
    unschedulable: str | None = None,
    deleting: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    """A worker pod as the API server returns it, with only the fields that matter here."""
    state: dict[str, Any] = {"running": {}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": waiting_message}}
    if terminated:
        state = {"terminated": {"reason": terminated, "exitCode": 137}}
    last: dict[str, Any] = {}
    if last_terminated:
        at = (finished or NOW - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        last = {"terminated": {"reason": last_terminated, "exitCode": 137, "finishedAt": at}}
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [{"name": "worker", "state": state, "lastState": last}],
    }
    if unschedulable:
        status = {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": unschedulable}],
        }  # fmt: skip
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = EARLIER
    return {"metadata": meta, "status": status}


def deployment(
    replicas: int = 2,
    ready: int = 2,
    updated: int | None = None,
    seen: int = 4,
    generation: int = 4,
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
            "observedGeneration": seen,
        },
    }


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def observe(previous: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    obs = Observation(generation=kw.pop("generation", 7), **{"desired_replicas": 2, **kw})
    return pool_status(obs, "large-v3", previous or {}, NOW)


# --- diagnosis from pods

DIAGNOSES = [
    ("all running", [pod()], None),
    ("oom killed now", [pod(terminated="OOMKilled")], "OOMKilled"),
    ("oom killed, now in backoff", [pod(waiting="CrashLoopBackOff", last_terminated="OOMKilled",
                                        finished=NOW - timedelta(hours=2))], "OOMKilled"),
    ("oom killed a minute ago, running again", [pod(last_terminated="OOMKilled")], "OOMKilled"),
    ("oom killed an hour ago, fine since", [pod(last_terminated="OOMKilled",
                                                finished=NOW - timedelta(hours=1))], None),
    ("crash loop", [pod(waiting="CrashLoopBackOff", last_terminated="Error")], "CrashLoopBackOff"),
    ("image pull backoff", [pod(waiting="ImagePullBackOff")], "ImagePullBackOff"),
    ("err image pull reads as image pull backoff", [pod(waiting="ErrImagePull")],
     "ImagePullBackOff"),
    ("bad secret reference", [pod(waiting="CreateContainerConfigError")],
     "CreateContainerConfigError"),
    ("still creating is fine", [pod(waiting="ContainerCreating")], None),
    ("no free gpu is insufficient gpu",
     [pod(unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")],
     "InsufficientGPU"),
    ("unschedulable for another reason",
     [pod(unschedulable="0/3 nodes are available: 3 node(s) didn't match Pod's node selector.")],
     "Unschedulable"),
    ("a terminating pod does not count", [pod(waiting="CrashLoopBackOff", deleting=True)], None),
    ("a failed (evicted) pod does not count", [pod(terminated="OOMKilled", phase="Failed")], None),
    ("oom outranks crash loop on another pod",
     [pod("a", waiting="CrashLoopBackOff"), pod("b", terminated="OOMKilled")], "OOMKilled"),
    ("crash loop outranks unschedulable",
     [pod("a", unschedulable="no nodes"), pod("b", waiting="CrashLoopBackOff")],
     "CrashLoopBackOff"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("pods", "reason"), [d[1:] for d in DIAGNOSES], ids=[d[0] for d in DIAGNOSES]
)
def test_diagnosis(pods: list[dict[str, Any]], reason: str | None) -> None:
    found = diagnose(pods, NOW)
    assert (found.reason if found else None) == reason


def test_the_message_names_the_pod_the_cause_and_what_to_do() -> None:
    found = diagnose([pod("large-v3-worker-x", terminated="OOMKilled")], NOW)
    assert found is not None
    assert found.message.startswith("pod large-v3-worker-x: container worker was OOMKilled;")
    assert "raise spec.resources.memory" in found.message
    assert "spec.concurrency.perPod" in found.message


def test_the_message_counts_failing_pods_and_names_the_first_by_name() -> None:
    pods = [pod("w-c", waiting="ImagePullBackOff", waiting_message="Back-off pulling image \"x\""),
            pod("w-a", waiting="ErrImagePull"), pod("w-b")]  # fmt: skip
    found = diagnose(pods, NOW)
    assert found is not None
    assert found.message.startswith("2 pods (first: w-a): container worker is in ErrImagePull;")
    assert "check spec.image" in found.message


def test_insufficient_gpu_counts_the_waiting_pods_and_quotes_the_scheduler() -> None:
    short = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    found = diagnose([pod("w-b", unschedulable=short), pod("w-a", unschedulable=short),
                      pod("w-c")], NOW)  # fmt: skip
    assert found is not None and found.reason == "InsufficientGPU"
    assert found.message.startswith(f"2 pods wait for nvidia.com/gpu (first: w-a): {short};")
    assert "not counted as capacity" in found.message


def test_unschedulable_quotes_the_scheduler_and_names_the_gpu_resource() -> None:
    found = diagnose(
        [pod(unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/mig-1g.10gb.")],
        NOW,
        gpu="nvidia.com/mig-1g.10gb",
    )
    assert found is not None
    assert "3 Insufficient nvidia.com/mig-1g.10gb." in found.message
    assert "add nodes with free nvidia.com/mig-1g.10gb" in found.message


# --- conditions


STATES = [
    ("all ready", dict(deployment=deployment(2, 2)),
     {"Ready": ("True", "Serving"), "Degraded": ("False", "Healthy"),
      "Scaling": ("False", "Stable")}),
    ("no deployment yet", dict(deployment=None),
     {"Ready": ("False", "NoReplicasReady"), "Scaling": ("True", "Creating")}),
    ("one of two ready", dict(deployment=deployment(2, 1)),
     {"Ready": ("True", "Serving"), "Scaling": ("True", "ScalingUp")}),
    ("scaling up", dict(deployment=deployment(1, 1), desired_replicas=3),
     {"Ready": ("True", "Serving"), "Scaling": ("True", "ScalingUp")}),
    ("scaling down", dict(deployment=deployment(4, 4), desired_replicas=2),
     {"Scaling": ("True", "ScalingDown")}),
    ("rolling update", dict(deployment=deployment(2, 2, updated=1)),
     {"Scaling": ("True", "RollingUpdate")}),
    ("deployment controller behind", dict(deployment=deployment(2, 2, seen=3, generation=4)),
     {"Scaling": ("True", "Progressing")}),
    ("scaled to zero", dict(deployment=deployment(0, 0), desired_replicas=0),
     {"Ready": ("False", "ScaledToZero"), "Scaling": ("False", "Stable")}),
    ("crash looping", dict(deployment=deployment(2, 0), pods=[pod(waiting="CrashLoopBackOff")]),
     {"Ready": ("False", "NoReplicasReady"), "Degraded": ("True", "CrashLoopBackOff")}),
    ("degraded but serving", dict(deployment=deployment(2, 1), pods=[pod(terminated="OOMKilled")]),
     {"Ready": ("True", "Serving"), "Degraded": ("True", "OOMKilled")}),
    ("invalid spec", dict(problem=Diagnosis("InvalidSpec", "spec.model: required")),
     {"Ready": ("False", "InvalidSpec"), "Degraded": ("True", "InvalidSpec"),
      "Scaling": ("False", "InvalidSpec")}),
    ("name conflict", dict(deployment=None, problem=Diagnosis("NameConflict", "taken")),
     {"Degraded": ("True", "NameConflict")}),
]  # fmt: skip


@pytest.mark.parametrize(("observed", "want"), [s[1:] for s in STATES], ids=[s[0] for s in STATES])
def test_conditions(observed: dict[str, Any], want: dict[str, tuple[str, str]]) -> None:
    got = conditions(observe(**observed))
    assert want.items() <= got.items()


def test_status_carries_counts_selector_and_generation() -> None:
    status = observe(deployment=deployment(3, 2, updated=3), desired_replicas=3)
    assert status["replicas"] == 3 and status["readyReplicas"] == 2
    assert status["updatedReplicas"] == 3
    assert status["observedGeneration"] == 7
    assert status["selector"] == (
        "app.kubernetes.io/component=worker,app.kubernetes.io/part-of=asrpool,"
        "asrpool.dev/pool=large-v3"
    )
    assert "queueDepth" not in status  # unknown without the routers' metrics


def test_load_becomes_queue_depth_and_in_flight() -> None:
    status = observe(deployment=deployment(), load=PoolLoad(in_flight=6.0, queue_depth=11.0))
    assert (status["queueDepth"], status["inFlight"]) == (11, 6)


def test_transition_time_stays_while_a_condition_keeps_its_status() -> None:
    first = observe(deployment=deployment(2, 2))
    aged = {
        **first,
        "conditions": [{**c, "lastTransitionTime": EARLIER} for c in first["conditions"]],
    }
    again = observe(aged, deployment=deployment(2, 2))
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {EARLIER}
    broken = observe(aged, deployment=deployment(2, 0), pods=[pod(waiting="CrashLoopBackOff")])
    times = {c["type"]: c["lastTransitionTime"] for c in broken["conditions"]}
    assert times["Degraded"] == times["Ready"] == "2026-03-01T12:00:00Z"
    assert times["Scaling"] == "2026-03-01T12:00:00Z"  # it went from Stable to ScalingUp


def test_the_same_world_gives_no_status_patch() -> None:
    status = observe(deployment=deployment())
    assert status_patch(status, observe(status, deployment=deployment())) is None


def test_a_changed_world_gives_the_whole_new_status_and_nulls_for_dropped_keys() -> None:
    before = observe(deployment=deployment(), load=PoolLoad(1, 2))
    after = observe(before, deployment=deployment(2, 1))
    patch = status_patch(before, after)
    assert patch is not None
    assert patch["readyReplicas"] == 1
    assert patch["queueDepth"] is None and patch["inFlight"] is None


# --- events


def test_becoming_degraded_is_a_warning_with_the_reason() -> None:
    healthy = observe(deployment=deployment())
    broken = observe(healthy, deployment=deployment(2, 1), pods=[pod(terminated="OOMKilled")])
    (event,) = status_events(healthy, broken)
    assert (event.type, event.reason) == ("Warning", "OOMKilled")
    assert "was OOMKilled" in event.message


def test_a_new_reason_while_degraded_is_another_warning_and_the_same_one_is_not() -> None:
    a = observe(deployment=deployment(2, 1), pods=[pod(waiting="ImagePullBackOff")])
    b = observe(a, deployment=deployment(2, 1), pods=[pod(waiting="ErrImagePull")])
    assert status_events(a, b) == []
    c = observe(b, deployment=deployment(2, 1), pods=[pod(waiting="CrashLoopBackOff")])
    assert [e.reason for e in status_events(b, c)] == ["CrashLoopBackOff"]


def test_recovering_and_becoming_ready_are_normal_events() -> None:
    broken = observe(deployment=deployment(2, 0), pods=[pod(waiting="CrashLoopBackOff")])
    fixed = observe(broken, deployment=deployment(2, 2), pods=[pod()])
    assert status_events(broken, fixed) == [
        Event("Normal", "Recovered", "no worker pod is failing any more"),
        Event("Normal", "Ready", "2 of 2 worker pods ready"),
    ]


def test_losing_every_ready_pod_is_a_warning() -> None:
    serving = observe(deployment=deployment(2, 2))
    lost = observe(serving, deployment=deployment(2, 0))
    assert [(e.type, e.reason) for e in status_events(serving, lost)] == [("Warning", "NotReady")]


def test_a_first_status_of_a_healthy_starting_pool_posts_nothing() -> None:
    assert status_events({}, observe(deployment=None)) == []
