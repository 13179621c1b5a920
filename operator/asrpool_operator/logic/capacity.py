"""A pool's worker pods → how many serve, how many are coming, how many wait for GPUs (pure).

The autoscaler grows against pods that serve (``ready``), never against pods that only exist:
a pod loading a large model, or one Pending because no node has a free GPU, takes no work.
Pods Pending with the scheduler's ``Insufficient <gpu resource>`` are counted apart
(``gpu_pending``): adding more of them would only add more Pending pods, so the autoscaler
holds, and status says ``InsufficientGPU`` (``status.diagnose``). Terminating pods count for
nothing: they are on their way out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Capacity:
    ready: int = 0  # pass their readiness probe: serving
    starting: int = 0  # exist and are not ready yet (scheduling, pulling, loading the model)
    gpu_pending: int = 0  # among the starting: Pending for want of GPUs


def capacity(pods: Sequence[Mapping[str, Any]], gpu_resource: str) -> Capacity:
    ready = starting = gpu_pending = 0
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        if is_ready(pod):
            ready += 1
            continue
        starting += 1
        if waits_for_gpu(pod, gpu_resource):
            gpu_pending += 1
    return Capacity(ready=ready, starting=starting, gpu_pending=gpu_pending)


def is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def waits_for_gpu(pod: Mapping[str, Any], gpu_resource: str) -> bool:
    """The scheduler found no node with a free ``gpu_resource`` for this pod."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if (
            c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
            and f"Insufficient {gpu_resource}" in str(c.get("message") or "")
        ):
            return True
    return False
