"""The autoscaler's situation → what the pool's status says about it (pure).

``report`` turns one decision (``autoscale.decide``) and what surrounds it into the
``Autoscaling`` condition and ``status.autoscaling``; ``status.pool_status`` writes them and
``status.status_events`` posts an Event when the condition's reason changes. The condition
says whether the operator sets spec.replicas, and what holds it back, most pressing first:

  reason             status  when
  ExternalScaler     False   an HPA (KEDA makes one) targets the pool while autoscaling is on:
                             the operator refuses to fight it and leaves replicas alone
  Disabled           False   spec.autoscaling.enabled is false: replicas are someone else's
  NoMetrics          False   no router answered: replicas are held
  InsufficientGPU    True    pods wait for GPUs: growth is held at the current size
  MetricsIncomplete  True    some routers did not answer: scaling on the others, up only
  Active             True    replicas follow the routers' load

Messages hold no numbers that change every period (they would rewrite the status each
period); the numbers behind each change are in ``lastScale`` and in the ScaledUp/ScaledDown
Events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .autoscale import HELD_GPU, HELD_METRICS_INCOMPLETE, HELD_NO_METRICS, ScaleDecision
from .capacity import Capacity

AUTOSCALING = "Autoscaling"  # the condition's type


@dataclass(frozen=True)
class LastScale:
    """The autoscaler's latest change of spec.replicas."""

    time: str  # RFC 3339
    reason: str  # ScaledUp | ScaledDown | OutOfRange
    message: str


@dataclass(frozen=True)
class AutoscalerReport:
    reason: str
    message: str
    active: bool  # the condition's status
    panic: bool = False
    last_scale: LastScale | None = None  # None: keep what status says (e.g. after a restart)


def report(
    *,
    enabled: bool,
    replicas: int,
    decision: ScaleDecision | None,
    pods: Capacity,
    gpu_resource: str,
    external: Sequence[str] = (),
    missing: Sequence[str] = (),
    last_scale: LastScale | None = None,
) -> AutoscalerReport:
    """The condition for this period. ``decision`` is None when the operator did not decide
    (disabled, or refusing an external scaler)."""
    if external and enabled:
        return AutoscalerReport(
            "ExternalScaler",
            f"{_scalers(external)} also scale{'s' if len(external) == 1 else ''} this pool: the "
            "operator leaves spec.replicas alone rather than fight it; remove it, or set "
            "spec.autoscaling.enabled: false to let it scale",
            False,
            last_scale=last_scale,
        )
    if not enabled or decision is None:
        who = f" ({_scalers(external)})" if external else ""
        return AutoscalerReport(
            "Disabled",
            f"spec.autoscaling.enabled is false: spec.replicas is set by kubectl scale, an HPA "
            f"or KEDA{who}",
            False,
            last_scale=last_scale,
        )
    panic = decision.panic
    if decision.held == HELD_NO_METRICS:
        return AutoscalerReport(
            "NoMetrics",
            f"no router reported the load (the operator's --router-selector, the routers' "
            f"/metrics): holding at {replicas} pods",
            False,
            panic,
            last_scale,
        )
    if decision.held == HELD_GPU or pods.gpu_pending:
        waiting = f"{pods.gpu_pending} pod{'s' if pods.gpu_pending != 1 else ''}"
        return AutoscalerReport(
            "InsufficientGPU",
            f"{waiting} wait{'s' if pods.gpu_pending == 1 else ''} for a free {gpu_resource} "
            f"and {'are' if pods.gpu_pending != 1 else 'is'} not counted as capacity: growth "
            f"held at {replicas} pods",
            True,
            panic,
            last_scale,
        )
    if decision.held == HELD_METRICS_INCOMPLETE or missing:
        return AutoscalerReport(
            "MetricsIncomplete",
            f"router{'s' if len(missing) != 1 else ''} {', '.join(missing)} did not answer: "
            "scaling on the others' load, up only, never down",
            True,
            panic,
            last_scale,
        )
    return AutoscalerReport(
        "Active", "spec.replicas follows the routers' load", True, panic, last_scale
    )


def _scalers(names: Sequence[str]) -> str:
    kind = "HorizontalPodAutoscaler" if len(names) == 1 else "HorizontalPodAutoscalers"
    return f"{kind} {', '.join(sorted(names))}"
