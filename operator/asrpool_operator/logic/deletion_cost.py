"""Before a scale-down: which pods the ReplicaSet should remove first (pure).

When replicas go down, the ReplicaSet controller removes pods that are not ready (or not yet
scheduled) first, and among ready pods those with the lowest
``controller.kubernetes.io/pod-deletion-cost`` annotation. Left alone it picks blind, and may
remove the pod with the most requests in flight. So, just before the autoscaler lowers
replicas, ``cost_patches`` ranks the ready pods by what the routers say each runs now: the
idlest are cheapest. Written only at a scale-down and only where the value changes, so pods
are not rewritten every period.

The pods that go still finish what they hold: the routers stop sending to a terminating
endpoint at once, and the worker drains on SIGTERM (spec.drain).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .capacity import is_ready

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def cost_patches(
    pods: Sequence[Mapping[str, Any]], in_flight: Mapping[str, float]
) -> dict[str, str]:
    """Pod name → the cost annotation to write (only the pods whose value changes)."""
    out: dict[str, str] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or not is_ready(pod):
            continue  # removed first anyway, whatever their cost
        name = str(meta.get("name") or "")
        # Integer attempts in flight: the annotation is an int32.
        cost = str(round(in_flight.get(name, 0.0)))
        if (meta.get("annotations") or {}).get(DELETION_COST) != cost:
            out[name] = cost
    return out
