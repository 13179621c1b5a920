"""The pods behind the autoscaler: what counts as capacity, who goes first, who else scales."""

from __future__ import annotations

from typing import Any

import pytest

from asrpool_operator.logic.capacity import Capacity, capacity, waits_for_gpu
from asrpool_operator.logic.deletion_cost import DELETION_COST, cost_patches
from asrpool_operator.logic.external_scaler import scalers_of

GPU_SHORT = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: not helpful."


def pod(
    name: str,
    *,
    ready: bool = False,
    pending: str | None = None,
    deleting: bool = False,
    phase: str = "Running",
    cost: str | None = None,
) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"type": "Ready", "status": str(ready)}]
    if pending is not None:
        phase = "Pending"
        conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                       "message": pending}]  # fmt: skip
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-03-01T12:00:00Z"
    if cost is not None:
        meta["annotations"] = {DELETION_COST: cost}
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


CAPACITY = [
    ("none", [], Capacity()),
    ("ready pods serve", [pod("a", ready=True), pod("b", ready=True)], Capacity(ready=2)),
    ("a loading pod is coming, not capacity", [pod("a", ready=True), pod("b")],
     Capacity(ready=1, starting=1)),
    ("pods waiting for GPUs are counted apart", [pod("a", pending=GPU_SHORT),
     pod("b", pending=GPU_SHORT)], Capacity(starting=2, gpu_pending=2)),
    ("another scheduling problem is no GPU shortage",
     [pod("a", pending="0/2 nodes are available: 2 node(s) didn't match Pod's node selector.")],
     Capacity(starting=1)),
    ("terminating and finished pods count for nothing",
     [pod("a", ready=True, deleting=True), pod("b", phase="Failed"), pod("c", phase="Succeeded")],
     Capacity()),
]  # fmt: skip


@pytest.mark.parametrize(("pods", "want"), [c[1:] for c in CAPACITY], ids=[c[0] for c in CAPACITY])
def test_capacity(pods: list[dict[str, Any]], want: Capacity) -> None:
    assert capacity(pods, "nvidia.com/gpu") == want


def test_the_gpu_shortage_is_of_the_pools_own_resource() -> None:
    mig = pod("a", pending="0/1 nodes are available: 1 Insufficient nvidia.com/mig-1g.10gb.")
    assert waits_for_gpu(mig, "nvidia.com/mig-1g.10gb")
    assert not waits_for_gpu(mig, "nvidia.com/gpu")


# --- deletion cost


def test_the_idlest_ready_pods_are_cheapest_to_delete() -> None:
    pods = [pod("busy", ready=True), pod("idle", ready=True), pod("unknown", ready=True)]
    assert cost_patches(pods, {"busy": 3.0, "idle": 0.0}) == {
        "busy": "3",
        "idle": "0",
        "unknown": "0",
    }


def test_only_changed_costs_are_written() -> None:
    pods = [pod("a", ready=True, cost="2"), pod("b", ready=True, cost="0")]
    assert cost_patches(pods, {"a": 2.0, "b": 1.0}) == {"b": "1"}
    assert cost_patches(pods, {"a": 2.0, "b": 0.0}) == {}


def test_pods_the_replicaset_removes_first_anyway_are_left_alone() -> None:
    pods = [pod("loading"), pod("pending", pending=GPU_SHORT), pod("going", ready=True,
            deleting=True)]  # fmt: skip
    assert cost_patches(pods, {"loading": 1.0, "going": 4.0}) == {}


# --- external scalers


def hpa(
    name: str, kind: str = "ASRPool", target: str = "large-v3", api: str = "asrpool.dev/v1alpha1"
) -> dict[str, Any]:
    ref = {"apiVersion": api, "kind": kind, "name": target}
    return {"metadata": {"name": name, "namespace": "speech"}, "spec": {"scaleTargetRef": ref}}


def test_hpas_aimed_at_the_pool_are_found_and_others_are_not() -> None:
    hpas = [
        hpa("keda-hpa-large-v3"),
        hpa("by-hand"),
        hpa("other-pool", target="tiny"),
        hpa("a-deployment", kind="Deployment", api="apps/v1"),
        hpa("same-kind-other-group", api="example.com/v1"),
    ]
    assert scalers_of(hpas, "large-v3") == ["by-hand", "keda-hpa-large-v3"]
    assert scalers_of(hpas, "base") == []
