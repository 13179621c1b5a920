"""Load + recent history → how many worker pods a pool should have (pure).

``decide`` is the operator's autoscaler for pools with ``spec.autoscaling``. The load is what
the routers report for the pool (requests in flight on its pods, requests queued for it);
time and history are parameters, so every decision replays in a table.

    by in-flight = ceil(in flight / targetInFlightPerPod)        the slots busy now
    by queue     = current + ceil((queued - targetQueueDepth) / perPod)   when past tolerance
                   (at least 1 when the pool is at zero and anything waits: scale from zero)
    wanted       = max(by in-flight, by queue), within [minReplicas, maxReplicas]

Up is immediate but at most doubles (or adds 4) per decision, as an HPA's default policy:
a burst gets GPUs at once, a metrics glitch cannot ask for a hundred. Down is stabilized:
the pool shrinks only to the highest recommendation of the last
``scaleDownStabilizationSeconds``, so a lull between bursts gives nothing back. Without
metrics (no router answered) nothing changes except bringing replicas into [min, max].
A fresh history (the operator just started) counts the current size as a recommendation
made now, so a restart never scales down before a whole window has passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .spec import Autoscaling

UP_FACTOR = 2
UP_MIN_STEP = 4


@dataclass(frozen=True)
class PoolLoad:
    """A pool's load, summed over every router: requests running and requests waiting."""

    in_flight: float = 0.0
    queue_depth: float = 0.0


@dataclass(frozen=True)
class Recommendation:
    at: float  # seconds on the caller's monotonic clock
    replicas: int


@dataclass(frozen=True)
class ScaleDecision:
    replicas: int
    reason: str  # ScaledUp | ScaledDown | Unchanged | NoMetrics | OutOfRange
    message: str
    history: tuple[Recommendation, ...]


def decide(
    policy: Autoscaling,
    per_pod: int,
    current: int,
    load: PoolLoad | None,
    history: Sequence[Recommendation],
    now: float,
) -> ScaleDecision:
    """The replicas the pool should have now, why, and the history to pass next time."""
    window = policy.scale_down_stabilization_s
    kept = tuple(r for r in history if now - r.at <= window)
    if not history:  # just started: the current size counts as a recommendation made now
        kept = (Recommendation(now, current),)
    clamped = _clamp(policy, current)
    if load is None:
        reason = "OutOfRange" if clamped != current else "NoMetrics"
        return ScaleDecision(clamped, reason, "no load reported by the routers", kept)

    target = policy.target_in_flight_per_pod or float(per_pod)
    by_in_flight = math.ceil(load.in_flight / target - 1e-9)
    excess = load.queue_depth - policy.target_queue_depth
    by_queue = current + math.ceil(excess / per_pod - 1e-9) if excess > 0 else 0
    if current == 0 and load.queue_depth > 0:
        # Scaled to zero, nothing can drain the queue: whatever the tolerance, wake one pod.
        by_queue = max(by_queue, 1)
    wanted = _clamp(policy, max(by_in_flight, by_queue))
    wanted = min(wanted, max(current * UP_FACTOR, current + UP_MIN_STEP))
    history_out = (*kept, Recommendation(now, wanted))

    # Up at once; down only as far as the highest recommendation of the window allows.
    stabilized = max(r.replicas for r in history_out)
    replicas = _clamp(policy, wanted if wanted >= current else min(current, stabilized))
    why = (
        f"{load.in_flight:g} requests in flight (target {target:g} a pod), "
        f"{load.queue_depth:g} queued (tolerated {policy.target_queue_depth})"
    )
    if replicas == current:
        return ScaleDecision(replicas, "Unchanged", f"{current} pods: {why}", history_out)
    if replicas > current:
        reason = "ScaledUp"
    else:
        reason = "ScaledDown" if clamped == current else "OutOfRange"
    return ScaleDecision(replicas, reason, f"{current} → {replicas} pods: {why}", history_out)


def _clamp(policy: Autoscaling, n: int) -> int:
    return max(policy.min_replicas, min(policy.max_replicas, n))
