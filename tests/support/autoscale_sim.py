"""A pool of pods under a load trace, in simulated time: an autoscaling rule in a loop.

A stand-in for the cluster and the router, small on purpose (the real ones run in
tests/k8s): requests arrive as a trace says, wait in one FIFO queue, run ``per_pod`` at a time
on ready pods for a fixed service time. A pod asked for becomes ready ``load_time_s`` later
(a large model loading), or waits for a GPU while the cluster has none free (``gpus``); a pod
removed while busy drains first, the least busy going first (the pods' deletion cost). Every
``tick_s`` the rule sees what the operator would: the router's counters through
``LoadHistory``, the pods as a ``Capacity``; its answer becomes the replicas.

``OperatorRule`` is ``asrpool_operator.logic.autoscale.decide``; ``HpaRule`` is the plain
HPA-style rule it is compared with in ``bench/autoscale_trace.py``. Deterministic: the
arrivals are a fluid trace, or Poisson from a seeded generator (``seed``), which is what
makes an instantaneous sample noisy. Bounded: the trace's length fixes the steps.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from asrpool_operator.logic.autoscale import Memory, Observed, PoolLoad, decide
from asrpool_operator.logic.capacity import Capacity
from asrpool_operator.logic.load_window import LoadHistory
from asrpool_operator.logic.router_metrics import PoolSample
from asrpool_operator.logic.spec import Autoscaling

MODEL = "m"


@dataclass(frozen=True)
class Phase:
    seconds: float
    rate: float  # requests a second


@dataclass
class _Pod:
    ready_at: float | None  # None: Pending, no GPU free yet
    busy: int = 0
    removing: bool = False

    def ready(self, now: float) -> bool:
        return self.ready_at is not None and self.ready_at <= now and not self.removing


@dataclass(frozen=True)
class View:
    """What a rule sees at one tick."""

    now: float
    replicas: int  # spec.replicas
    pods: Capacity
    observed: Observed  # averaged by LoadHistory over the rule's windows
    latest: PoolLoad


class OperatorRule:
    """The operator's rule, with the memory the autoscaler shell keeps for it."""

    name = "asrpool"

    def __init__(self, policy: Autoscaling, per_pod: int) -> None:
        self.policy = policy
        self.per_pod = per_pod
        self.memory = Memory()
        self.tick_s = 2.0

    def windows(self) -> tuple[float, float]:
        return float(self.policy.stable_window_s), float(self.policy.panic_window_s or 1)

    def __call__(self, view: View) -> int:
        d = decide(
            self.policy, self.per_pod, view.replicas, view.pods, view.observed, self.memory,
            view.now,
        )  # fmt: skip
        self.memory = d.memory
        return d.replicas


class HpaRule:
    """The HPA's algorithm on one per-pod metric: every 15 s,
    ``desired = ceil(current × (in flight + queued) / current / target)``, kept within 10 %
    of the current size, up by at most max(4 pods, 100 %) a period, down only to the highest
    recommendation of the last ``stabilization_s`` (the HPA's defaults)."""

    name = "HPA-style"

    def __init__(self, policy: Autoscaling, per_pod: int, stabilization_s: float = 300) -> None:
        self.policy = policy
        self.target = policy.target_in_flight_per_pod or float(per_pod)
        self.stabilization_s = stabilization_s
        self.recs: list[tuple[float, int]] = []
        self.tick_s = 15.0

    def windows(self) -> tuple[float, float]:
        return 1.0, 1.0

    def __call__(self, view: View) -> int:
        current = view.replicas
        load = view.latest.in_flight + view.latest.queue_depth
        if current == 0:
            desired = 1 if load > 0 else 0  # as KEDA activates a scaled-to-zero target
        else:
            ratio = load / current / self.target
            desired = current if abs(ratio - 1) <= 0.1 else math.ceil(current * ratio)
        desired = max(self.policy.min_replicas, min(self.policy.max_replicas, desired))
        if not self.recs:  # as the operator's rule: the size it found counts as made now
            self.recs.append((view.now, current))
        self.recs = [(t, n) for t, n in self.recs if view.now - t <= self.stabilization_s]
        self.recs.append((view.now, desired))
        if desired > current:
            return min(desired, max(current * 2, current + 4))
        return min(current, max(n for _, n in self.recs))


@dataclass
class Result:
    rule: str
    replicas: list[tuple[float, int]] = field(default_factory=list)  # at each tick
    queue: list[tuple[float, int]] = field(default_factory=list)  # at each tick
    waits: list[float] = field(default_factory=list)  # each request's time in the queue
    pod_seconds: float = 0.0  # pods holding a GPU (loading, serving or draining), integrated
    scale_events: int = 0
    unserved: int = 0  # still queued or running at the end

    def p99_wait(self) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]

    def max_replicas(self, start: float = 0.0, end: float = math.inf) -> int:
        return max((n for t, n in self.replicas if start <= t < end), default=0)

    def replicas_at(self, t: float) -> int:
        return [n for at, n in self.replicas if at <= t][-1]

    def queue_at(self, t: float) -> int:
        return [n for at, n in self.queue if at <= t][-1]

    def changes(self) -> list[int]:
        """+1 / -1 for each change of replicas, in order."""
        out, last = [], None
        for _, n in self.replicas:
            if last is not None and n != last:
                out.append(1 if n > last else -1)
            last = n
        return out

    def reversals(self) -> int:
        """How often the direction of change flipped (up then down, or down then up)."""
        c = self.changes()
        return sum(1 for a, b in itertools.pairwise(c) if a != b)


def simulate(
    trace: Sequence[Phase],
    rule: OperatorRule | HpaRule,
    *,
    per_pod: int = 2,
    service_s: float = 4.0,
    load_time_s: float = 30.0,
    gpus: int | None = None,
    replicas: int = 0,
    dt: float = 0.5,
    seed: int | None = None,
) -> Result:
    """Replay ``trace`` through ``rule``; every request is served in order (no timeouts)."""
    result = Result(rule.name)
    pods = [_Pod(ready_at=0.0) for _ in range(replicas)]
    queue: deque[float] = deque()
    running: list[tuple[float, _Pod]] = []
    history = LoadHistory()
    stable_s, panic_s = rule.windows()
    busy_total = queued_total = owed = 0.0
    steps_per_tick = round(rule.tick_s / dt)
    end = sum(p.seconds for p in trace)
    rng = random.Random(seed) if seed is not None else None
    step = 0
    while step * dt < end:
        now = step * dt
        rate = _rate(trace, now)
        # Finished requests free their slots; drained pods go.
        for item in [r for r in running if r[0] <= now]:
            running.remove(item)
            item[1].busy -= 1
        pods = [p for p in pods if not (p.removing and p.busy == 0)]
        # A freed GPU goes to a pod that waits for one.
        held = sum(1 for p in pods if p.ready_at is not None)
        for p in pods:
            if p.ready_at is None and (gpus is None or held < gpus):
                p.ready_at, held = now + load_time_s, held + 1
        if rng is None:
            owed += rate * dt
            arrivals = int(owed)
            owed -= arrivals
        else:
            arrivals = _poisson(rng, rate * dt)
        queue.extend([now] * arrivals)
        while queue:
            free = [p for p in pods if p.ready(now) and p.busy < per_pod]
            if not free:
                break
            pod = min(free, key=lambda p: p.busy)  # the router's least loaded
            result.waits.append(now - queue.popleft())
            pod.busy += 1
            took = service_s if rng is None else rng.expovariate(1.0 / service_s)
            running.append((now + max(dt, took), pod))
        in_flight = len(running)
        if step % steps_per_tick == 0:
            sample = PoolSample(
                queue_depth=float(len(queue)), in_flight=float(in_flight),
                busy_slot_seconds=busy_total, queued_seconds=queued_total,
            )  # fmt: skip
            history.record(now, {"router": {MODEL: sample}})
            live = [p for p in pods if not p.removing]
            ready = sum(1 for p in live if p.ready(now))
            pending = sum(1 for p in live if p.ready_at is None)
            view = View(
                now=now,
                replicas=len(live),
                pods=Capacity(ready=ready, starting=len(live) - ready, gpu_pending=pending),
                observed=Observed(
                    stable=history.window(MODEL, stable_s),
                    panic=history.window(MODEL, panic_s),
                    latest=history.latest(MODEL),
                ),
                latest=history.latest(MODEL),
            )
            wanted = rule(view)
            if wanted != len(live):
                result.scale_events += 1
                _resize(pods, live, wanted, now, load_time_s, gpus)
            result.replicas.append((now, wanted))
            result.queue.append((now, len(queue)))
        busy_total += in_flight * dt
        queued_total += len(queue) * dt
        result.pod_seconds += sum(1 for p in pods if p.ready_at is not None) * dt
        step += 1
    result.unserved = len(queue) + len(running)
    return result


def _resize(
    pods: list[_Pod],
    live: list[_Pod],
    wanted: int,
    now: float,
    load_time_s: float,
    gpus: int | None,
) -> None:
    if wanted > len(live):
        held = sum(1 for p in pods if p.ready_at is not None)
        for _ in range(wanted - len(live)):
            fits = gpus is None or held < gpus
            pods.append(_Pod(ready_at=now + load_time_s if fits else None))
            held += fits
        return
    # The ReplicaSet's order: unscheduled, then not ready, then the cheapest (idlest) ready.
    order = sorted(
        live,
        key=lambda p: (p.ready_at is not None, p.ready(now), p.busy),
    )
    for pod in order[: len(live) - wanted]:
        pod.removing = True


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's: fine for the small means of one step."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _rate(trace: Sequence[Phase], now: float) -> float:
    t = 0.0
    for phase in trace:
        if now < t + phase.seconds:
            return phase.rate
        t += phase.seconds
    return 0.0
