"""Windowed load + the pool's pods + memory → how many worker pods it should have (pure).

``decide`` is the operator's autoscaler for pools with ``spec.autoscaling`` (read against
Knative's KPA, the HPA's behaviour policies and KEDA). The load is what the routers report
for the pool, averaged over two windows by ``load_window.LoadHistory``; time and memory are
parameters, so every decision replays in a table and a simulation
(``tests/unit/test_operator_autoscale*.py``, ``bench/autoscale_trace.py``).

The proportional rule, on the work the pool holds, not on its current size::

    demand    = in flight + max(0, queued - targetQueueDepth)         requests
    by window = ceil(demand / targetInFlightPerPod)                   pods
                (kept at the current size within ±10 %: the tolerance band)

- stable: the average over ``stableWindowSeconds`` (60 s) decides;
- panic: when the average over ``panicWindowSeconds`` (6 s) asks for at least twice the pods
  the pool has (ready or starting), it panics for a stable window: it takes the larger of the
  two answers and never shrinks;
- from zero: any request running or waiting brings a first pod at once, whatever the windows;
- up: at most ``maxScaleUpRate`` × the ready pods, or ready + 4 (a Pending or loading pod is
  no capacity, so a queue that persists while pods load cannot run the pool up to
  maxReplicas), and not at all while pods wait for GPUs (more would only wait too);
- down: only to the highest recommendation of the last ``scaleDownStabilizationSeconds``, at
  most halving per decision, to zero only after ``scaleToZeroDelaySeconds`` without load, and
  never while some router did not answer (its load is unknown, not zero);
- no router answered at all: nothing changes but bringing replicas into [min, max].

A fresh memory (the operator just started) counts the current size as a recommendation made
now, so a restart never shrinks the pool before a whole delay has passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .capacity import Capacity
from .spec import Autoscaling

# Knative's default: panic at twice the pods' worth of demand. Knative counts ready pods;
# here the pods the pool has, so a queue that waits for pods already starting is no burst.
PANIC_THRESHOLD = 2.0
TOLERANCE = 0.1  # the HPA's: within ±10 % of the current size, keep it
MAX_SCALE_DOWN_RATE = 2.0  # at most halve per decision
UP_MIN_STEP = 4  # the HPA's too: a small pool may always grow by 4 ready pods' worth


@dataclass(frozen=True)
class PoolLoad:
    """A pool's load, summed over routers: requests running and requests waiting."""

    in_flight: float = 0.0
    queue_depth: float = 0.0


@dataclass(frozen=True)
class Observed:
    """The load the autoscaler decides on (``LoadHistory`` makes it)."""

    stable: PoolLoad
    panic: PoolLoad
    latest: PoolLoad  # the gauges at the latest scrape
    missing: tuple[str, ...] = ()  # ready routers that did not answer


@dataclass(frozen=True)
class Recommendation:
    at: float  # seconds on the caller's monotonic clock
    replicas: int


@dataclass(frozen=True)
class Memory:
    """What the autoscaler keeps between decisions for one pool."""

    recommendations: tuple[Recommendation, ...] = ()
    panic_until: float | None = None


# Why the rule did not simply follow the load (the Autoscaling condition's reason).
HELD_NO_METRICS = "NoMetrics"
HELD_GPU = "InsufficientGPU"
HELD_METRICS_INCOMPLETE = "MetricsIncomplete"


@dataclass(frozen=True)
class ScaleDecision:
    replicas: int
    reason: str  # ScaledUp | ScaledDown | Unchanged | OutOfRange
    message: str
    memory: Memory
    wanted: int = 0  # what the load asks for, within [min, max], before the limits
    panic: bool = False
    held: str | None = None  # HELD_*: a limit that kept the pool from following the load


def decide(
    policy: Autoscaling,
    per_pod: int,
    current: int,
    pods: Capacity,
    load: Observed | None,
    memory: Memory,
    now: float,
) -> ScaleDecision:
    """The replicas the pool should have now, why, and the memory to pass next time."""
    keep_s = max(policy.scale_down_stabilization_s, _zero_delay_s(policy))
    recs = tuple(r for r in memory.recommendations if now - r.at <= keep_s)
    if not memory.recommendations:  # just started: the current size counts as made now
        recs = (Recommendation(now, current),)
    if load is None:
        replicas = _clamp(policy, current)
        return ScaleDecision(
            replicas,
            "OutOfRange" if replicas != current else "Unchanged",
            f"{current} → {replicas} pods: no router reported the load"
            if replicas != current
            else f"{current} pods: no router reported the load; holding",
            Memory(recs, memory.panic_until),
            wanted=replicas,
            held=HELD_NO_METRICS,
        )

    target = policy.target_in_flight_per_pod or float(per_pod)
    stable_demand = _demand(policy, load.stable, load.latest)
    panic_demand = _demand(policy, load.panic, load.latest)
    by_stable = _proportional(stable_demand, target, current)
    by_panic = math.ceil(panic_demand / target - 1e-9)

    panic_until = memory.panic_until
    if policy.panic_window_s > 0 and panic_demand / target >= PANIC_THRESHOLD * max(current, 1):
        panic_until = now + policy.stable_window_s  # each burst extends it
    panicking = panic_until is not None and now < panic_until
    if not panicking:
        panic_until = None
    wanted = max(by_stable, by_panic, current) if panicking else by_stable
    if current == 0 and (load.latest.in_flight + load.latest.queue_depth + panic_demand) > 0:
        # Scaled to zero, nothing can serve what waits: whatever the windows, wake one pod.
        wanted = max(wanted, 1)
    wanted = _clamp(policy, wanted)
    recs = (*recs, Recommendation(now, wanted))

    replicas, held, limit = current, None, ""
    if wanted > current:
        cap = max(
            current,
            pods.ready + UP_MIN_STEP,
            math.ceil(pods.ready * policy.max_scale_up_rate - 1e-9),
        )
        replicas = min(wanted, cap)
        if replicas < wanted:
            limit = f"; growth capped at {cap} by {pods.ready} ready"
        if pods.gpu_pending and replicas > current:
            replicas, held = current, HELD_GPU
            limit = f"; growth held: {_pods(pods.gpu_pending)} waiting for GPUs"
    elif wanted < current:
        if load.missing:
            held = HELD_METRICS_INCOMPLETE
            limit = f"; not lower while {len(load.missing)} router(s) did not answer"
        else:
            in_delay = [r.replicas for r in recs if now - r.at <= policy.scale_down_stabilization_s]
            halved = math.floor(current / MAX_SCALE_DOWN_RATE)
            replicas = min(current, max(wanted, max(in_delay), halved))
            zero_window = [r.replicas for r in recs if now - r.at <= _zero_delay_s(policy)]
            if replicas == 0 and any(zero_window):
                replicas = 1  # idle, but not for the whole delay before zero yet
                limit = f"; zero after {_zero_delay_s(policy)} s without load"
            elif replicas > wanted:
                limit = (
                    f"; at most halving, and not below the highest of the last "
                    f"{policy.scale_down_stabilization_s} s"
                )
    if current < policy.min_replicas or current > _ceiling(policy):
        replicas = _clamp(policy, replicas)  # out of range: back in at once, whatever the limits
    if load.missing and held is None:
        held = HELD_METRICS_INCOMPLETE

    why = (
        f"{_num(load.stable.in_flight)} in flight and {_num(load.stable.queue_depth)} queued "
        f"over {policy.stable_window_s} s (tolerated {policy.target_queue_depth}), "
        f"target {target:g} a pod"
    )
    if panicking:
        why += f"; panic: {_num(panic_demand)} over {policy.panic_window_s} s"
    memory_out = Memory(recs, panic_until)
    if replicas == current:
        message = f"{current} pods, {wanted} wanted: {why}{limit}"
        return ScaleDecision(current, "Unchanged", message, memory_out, wanted, panicking, held)
    if replicas > current:
        reason = "ScaledUp"
    else:  # above maxReplicas (lowered, or set by hand) is brought down whatever the delays
        reason = "OutOfRange" if current > _ceiling(policy) else "ScaledDown"
    message = f"{current} → {replicas} pods: {why}{limit}"
    return ScaleDecision(replicas, reason, message, memory_out, wanted, panicking, held)


def _demand(policy: Autoscaling, load: PoolLoad, latest: PoolLoad) -> float:
    """Requests the pool should be running: those in flight and those queued past the
    tolerated depth. The pods this asks for are a total, starting pods included, so a
    queue that persists while pods load asks for the same pods again, not for more (the
    old rule added ``current + queue / perPod`` every period and ran up to maxReplicas).

    A queue counts only while it lasts: a backlog already served (a cold start's, a
    burst's) would otherwise ask for pods for a whole window after it is gone, and they
    would come up to an empty queue."""
    queued = min(load.queue_depth, latest.queue_depth) - policy.target_queue_depth
    return load.in_flight + max(0.0, queued)


def _proportional(demand: float, target: float, current: int) -> int:
    if current > 0 and abs(demand / (current * target) - 1.0) <= TOLERANCE:
        return current  # close enough: a change would only flap
    return math.ceil(demand / target - 1e-9)


def _zero_delay_s(policy: Autoscaling) -> int:
    # Going to zero is never quicker than an ordinary scale-down.
    return max(policy.scale_to_zero_delay_s, policy.scale_down_stabilization_s)


def _ceiling(policy: Autoscaling) -> int:
    # maxReplicas is required while enabled; only a disabled policy (never decided) lacks it.
    return policy.max_replicas if policy.max_replicas is not None else policy.min_replicas


def _clamp(policy: Autoscaling, n: int) -> int:
    return max(policy.min_replicas, min(_ceiling(policy), n))


def _num(x: float) -> str:
    return f"{round(x, 1):g}"


def _pods(n: int) -> str:
    return f"{n} pod" if n == 1 else f"{n} pods"
