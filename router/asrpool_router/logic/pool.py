"""The pool: admission, slots and grants for the pods serving one model.

This is the facade the asyncio shell calls; everything below it is reached through here.
A request asks for a slot (``submit``) and gets one at once (``Granted``), waits as a
ticket (``Queued``) or is turned away (``Rejected``). Every granted slot is given back
exactly once with ``release``, whatever happened (success, error, timeout, disconnect,
cancellation); a freed slot goes straight to the waiting tickets in priority order, and
the grants come back to the shell as ``list[Granted]`` to deliver to their waiters.

Shell loop, in short::

    r = pool.submit(audio_seconds=a, priority=p, now=now, exclude=tried)
    # Queued: wait for the ticket in a Granted from release/upsert_pod/cancel/poll,
    #         or for expire() to report it (answer queue_timeout).
    # Granted: send to slot.url, then
    outcome = classify(attempt_result)
    deliver(pool.release(r.slot, outcome, now))
    decision = pool.retry_decision(outcome, attempt=n, pod_id=r.slot.pod_id, tried=tried)

Timers: call ``expire(now)`` at ``next_deadline()``, and ``poll(now)`` at
``next_wakeup()``. ``poll`` matters when pods were ejected by their breaker: the end of
a cool-down frees capacity without any event, and only ``poll`` (or the next release or
health-check ``upsert_pod``) hands it to waiting tickets.

Policies, documented choices:

* No pod at all, or none ready / all ejected: ``submit`` still queues, because pods come
  back (a rollout, a restart, a cool-down ending) well within the queue timeout. Only a
  full queue rejects: ``queue_full`` with a Retry-After estimate (``retry_after.py``), or
  ``service_unavailable`` (no Retry-After) when no pod could take work anyway.
* Cold start: a ticket submitted while no pod is ready (scaled to zero, or every pod still
  loading its model) waits up to ``cold_start_timeout_s`` instead of ``queue_timeout_s``:
  the autoscaler is bringing a pod up, which for a large model takes minutes.
* Load integrals for autoscalers: ``snapshot`` reports ``busy_slot_seconds`` (∫ slots in
  flight dt) and ``queued_seconds`` (∫ queue depth dt) since the pool was made, advanced to
  the ``now`` each call is given (levels only change inside calls, so between two calls they
  are constant and the integral is exact).
* A removed pod with slots in flight lingers until drained (``pods.py``), so ``release``
  always finds it and ``in_flight()`` equals the slots the shell holds.
* ``release`` of a slot that is not held (released twice) is a no-op returning ``[]``.
* A ticket past its deadline is never granted, only reported by ``expire``; a ticket
  cancelled after it was granted is not waiting any more: its slot must be released.
* Priority is strict: a grant never goes to a ticket while an earlier one (higher class,
  or same class and older) that some pod could serve is waiting; a ticket that cannot
  use any free pod (all excluded) does not block the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from asrpool.wire import ErrorCode

from .breaker import BreakerPolicy
from .budget import BudgetPolicy
from .errors import Outcome, OutcomeKind
from .pods import PodState, PodStore
from .queueing import Waiter, WaitQueue
from .request import Priority, Request
from .retry import RetryDecision, RetryPolicy, decide
from .retry_after import HoldTime, retry_after_s
from .rng import Rng, SeededRng
from .scheduler import Scheduler, default_scheduler

__all__ = [
    "Granted",
    "Pool",
    "PoolPolicy",
    "Priority",
    "Queued",
    "Rejected",
    "Slot",
]


@dataclass(frozen=True)
class PoolPolicy:
    """The knobs of one pool (from the ASRPool resource's routing section)."""

    per_pod: int = 2
    max_queue: int = 64
    queue_timeout_s: float = 60.0
    # The queue deadline of a ticket submitted while no pod is ready (see the module doc).
    cold_start_timeout_s: float = 600.0
    max_attempts: int = 4
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 5.0
    # Circuit breaker: consecutive pod faults before ejection, and the cool-downs.
    breaker_failures: int = 3
    breaker_cooldown_s: float = 5.0
    breaker_max_cooldown_s: float = 120.0
    # Adaptive budget: the floor after OOMs, the cut factor, successes before +1.
    budget_floor: int = 1
    budget_decrease_factor: float = 0.5
    budget_increase_after: int = 10
    # Slot hold time assumed for Retry-After before any request finished.
    initial_hold_s: float = 5.0

    def __post_init__(self) -> None:
        if self.per_pod < 1:
            raise ValueError("per_pod must be at least 1")
        if self.max_queue < 0:
            raise ValueError("max_queue must not be negative")
        if not self.queue_timeout_s > 0:
            raise ValueError("queue_timeout_s must be positive")
        if not self.cold_start_timeout_s > 0:
            raise ValueError("cold_start_timeout_s must be positive")
        if self.initial_hold_s < 0:
            raise ValueError("initial_hold_s must not be negative")
        # The sub-policies validate the rest.
        self.budget_policy()
        self.breaker_policy()
        self.retry_policy()

    def budget_policy(self) -> BudgetPolicy:
        return BudgetPolicy(
            ceiling=self.per_pod,
            floor=min(self.budget_floor, self.per_pod),
            decrease_factor=self.budget_decrease_factor,
            increase_after=self.budget_increase_after,
        )

    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            failure_threshold=self.breaker_failures,
            base_cooldown_s=self.breaker_cooldown_s,
            max_cooldown_s=self.breaker_max_cooldown_s,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
        )


@dataclass(frozen=True)
class Slot:
    """One granted slot on one pod; release it exactly once."""

    ticket: int
    pod_id: str
    url: str
    audio_seconds: float


@dataclass(frozen=True)
class Granted:
    """A slot for the request with ticket ``slot.ticket``."""

    slot: Slot


@dataclass(frozen=True)
class Queued:
    """No room now; the request waits as ``ticket``."""

    ticket: int


@dataclass(frozen=True)
class Rejected:
    """Turned away: ``queue_full`` (with Retry-After) or ``service_unavailable``."""

    code: ErrorCode
    retry_after_s: float | None


@dataclass(frozen=True)
class _Held:
    slot: Slot
    granted_at: float
    # The pod's budget epoch at grant time (see AdaptiveBudget.on_oom).
    budget_epoch: int


@dataclass
class _Counters:
    """Totals since start, for metrics."""

    granted: int = 0
    queued: int = 0
    rejected: int = 0
    expired: int = 0
    cancelled: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Pool:
    """Admission and slot accounting for one model's pods."""

    def __init__(
        self,
        model: str,
        policy: PoolPolicy,
        scheduler: Scheduler | None = None,
        rng: Rng | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self.rng: Rng = rng if rng is not None else SeededRng()
        self.scheduler = scheduler if scheduler is not None else default_scheduler(self.rng)
        self._store = PodStore(policy.budget_policy(), policy.breaker_policy())
        self._queue = WaitQueue(policy.max_queue)
        self._held: dict[int, _Held] = {}
        self._last_ticket = 0
        # The latest ``now`` seen, for calls that take no time (upsert_pod, cancel, snapshot).
        self._clock = -math.inf
        # ∫ len(_held) dt and ∫ len(_queue) dt up to _clock (advanced by _tick).
        self._busy_slot_s = 0.0
        self._queued_s = 0.0
        self._hold_time = HoldTime(mean_s=policy.initial_hold_s)
        self.counters = _Counters()

    # --- pod membership -------------------------------------------------------------

    def upsert_pod(
        self,
        pod_id: str,
        url: str,
        *,
        ready: bool = True,
        terminating: bool = False,
        now: float | None = None,
    ) -> list[Granted]:
        """Add or update a pod from discovery / health checks; new room goes to waiters."""
        now = self._tick(now)
        self._store.upsert(pod_id, url, ready=ready, terminating=terminating)
        return self._dispatch(now)

    def reconfigure(self, policy: PoolPolicy, now: float | None = None) -> list[Granted]:
        """The pool's settings changed (its ASRPool was edited); new room goes to waiters.

        Budgets keep what they learned within the new perPod; the queue's new bound
        applies to new arrivals (tickets already waiting keep their place and deadline).
        """
        now = self._tick(now)
        self.policy = policy
        self._store.budget_policy = policy.budget_policy()
        self._store.breaker_policy = policy.breaker_policy()
        for pod in self._store:
            pod.budget.repolicy(policy.budget_policy())
        self._queue.capacity = policy.max_queue
        return self._dispatch(now)

    def remove_pod(self, pod_id: str) -> None:
        """Discovery lost the pod. With slots in flight it lingers until they come back."""
        self._store.delete(pod_id)

    # --- admission ------------------------------------------------------------------

    def submit(
        self,
        *,
        audio_seconds: float,
        priority: Priority,
        now: float,
        exclude: frozenset[str] = frozenset(),
    ) -> Granted | Queued | Rejected:
        """Ask for a slot for ``audio_seconds`` of audio, avoiding the pods in ``exclude``."""
        if not math.isfinite(audio_seconds) or audio_seconds < 0:
            raise ValueError("audio_seconds must be a finite number >= 0")
        now = self._tick(now)
        request = Request(audio_seconds, Priority(priority), frozenset(exclude))
        if not self._earlier_waiter_can_go(request, now):
            pod = self._pick(request, now)
            if pod is not None:
                return Granted(self._grant(pod, self._new_ticket(), request, now))
        if self._queue.full:
            self.counters.rejected += 1
            if self._capacity(now) == 0:
                return Rejected(ErrorCode.SERVICE_UNAVAILABLE, None)
            return Rejected(ErrorCode.QUEUE_FULL, self.retry_after(now))
        ticket = self._new_ticket()
        cold = not any(p.schedulable for p in self._store)
        wait_s = self.policy.cold_start_timeout_s if cold else self.policy.queue_timeout_s
        self._queue.push(Waiter(ticket, request, enqueued_at=now, deadline=now + wait_s))
        self.counters.queued += 1
        return Queued(ticket)

    def release(self, slot: Slot, outcome: OutcomeKind | Outcome, now: float) -> list[Granted]:
        """Give ``slot`` back, learn from ``outcome``, hand the room to waiting tickets."""
        now = self._tick(now)
        kind = outcome.kind if isinstance(outcome, Outcome) else OutcomeKind(outcome)
        held = self._held.pop(slot.ticket, None)
        if held is None:
            return []
        self.counters.outcomes[kind.value] = self.counters.outcomes.get(kind.value, 0) + 1
        pod = self._store.get(held.slot.pod_id)
        if pod is not None:
            pod.release(held.slot.audio_seconds)
            if kind is OutcomeKind.OOM:
                pod.budget.on_oom(held.budget_epoch)
            elif kind is OutcomeKind.OK:
                pod.budget.on_success()
            pod.breaker.on_result(held.slot.ticket, kind, now)
            self._store.forget_if_drained(pod.id)
        if kind is not OutcomeKind.CANCELLED:
            self._hold_time.observe(now - held.granted_at)
        return self._dispatch(now)

    def cancel(self, ticket: int, now: float | None = None) -> list[Granted]:
        """A waiting ticket's client went away. No-op if unknown or already granted."""
        now = self._tick(now)
        if self._queue.remove(ticket) is not None:
            self.counters.cancelled += 1
        return self._dispatch(now)

    def expire(self, now: float) -> list[int]:
        """Remove and return the waiting tickets whose deadline has passed."""
        now = self._tick(now)
        expired = [w.ticket for w in self._queue.expire(now)]
        self.counters.expired += len(expired)
        return expired

    def poll(self, now: float) -> list[Granted]:
        """Hand out room that time alone created (a breaker cool-down ending)."""
        return self._dispatch(self._tick(now))

    def next_deadline(self) -> float | None:
        """When the earliest waiting ticket expires (call ``expire`` then)."""
        return self._queue.next_deadline()

    def next_wakeup(self) -> float | None:
        """The earliest of ``next_deadline`` and, while tickets wait, a cool-down's end."""
        times: list[float] = []
        deadline = self._queue.next_deadline()
        if deadline is not None:
            times.append(deadline)
            times.extend(t for pod in self._store if (t := pod.breaker.wakes_at()) is not None)
        return min(times, default=None)

    def has_free_slot(
        self, exclude: frozenset[str] = frozenset(), now: float | None = None
    ) -> bool:
        """Could a request avoiding ``exclude`` get a slot right now?"""
        now = self._tick(now)
        request = Request(0.0, Priority.INTERACTIVE, frozenset(exclude))
        return bool(self.scheduler.candidates(self._takers(now), request, now))

    def retry_decision(
        self,
        outcome: Outcome,
        *,
        attempt: int,
        pod_id: str,
        tried: frozenset[str] = frozenset(),
        now: float | None = None,
        time_left_s: float | None = None,
    ) -> RetryDecision:
        """``retry.decide`` with this pool's policy, rng and room (call after ``release``)."""
        return decide(
            outcome,
            attempt=attempt,
            pod_id=pod_id,
            other_pod_has_room=self.has_free_slot(tried | {pod_id}, now),
            policy=self.policy.retry_policy(),
            rng=self.rng,
            time_left_s=time_left_s,
        )

    def retry_after(self, now: float | None = None) -> float:
        """Seconds a client turned away now should wait (see ``retry_after.py``)."""
        now = self._tick(now)
        return retry_after_s(
            queue_depth=len(self._queue),
            capacity=self._capacity(now),
            mean_hold_s=self._hold_time.mean_s,
            horizon_s=self.policy.queue_timeout_s,
        )

    # --- accounting / visibility ----------------------------------------------------

    def in_flight(self) -> int:
        """Slots held in this pool."""
        return len(self._held)

    def queue_depth(self) -> int:
        return len(self._queue)

    def waiting(self) -> list[int]:
        """Waiting tickets in service order."""
        return [w.ticket for w in self._queue.in_order()]

    def pods(self) -> list[PodState]:
        """The pods, removed-but-draining ones included (read only)."""
        return self._store.list()

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Plain data for /status and metrics."""
        now = self._tick(now)
        pods = [
            {
                "id": p.id,
                "url": p.url,
                "ready": p.ready,
                "terminating": p.terminating,
                "removed": p.removed,
                "budget": p.budget.capacity,
                "budget_ceiling": p.budget.policy.ceiling,
                "in_flight": p.in_flight,
                "in_flight_audio_seconds": p.in_flight_audio_seconds,
                "ejected": p.breaker.ejected,
                "breaker": p.breaker.state.value,
                "accepting": p.takes_work(now),
            }
            for p in self._store
        ]
        return {
            "model": self.model,
            "pods": pods,
            "queue_depth": len(self._queue),
            "queue_by_priority": {
                p.name.lower(): n for p, n in self._queue.depth_by_priority().items()
            },
            "in_flight": len(self._held),
            "in_flight_audio_seconds": sum(p.in_flight_audio_seconds for p in self._store),
            "capacity": self._capacity(now),
            "free_slots": sum(p.free_slots for p in self._takers(now)),
            "mean_hold_s": self._hold_time.mean_s,
            "busy_slot_seconds": self._busy_slot_s,
            "queued_seconds": self._queued_s,
            "totals": {
                "granted": self.counters.granted,
                "queued": self.counters.queued,
                "rejected": self.counters.rejected,
                "expired": self.counters.expired,
                "cancelled": self.counters.cancelled,
                "outcomes": dict(self.counters.outcomes),
            },
        }

    # --- internals ------------------------------------------------------------------

    def _tick(self, now: float | None) -> float:
        if now is not None and now > self._clock:
            if self._clock > -math.inf:
                # Every public call ticks before it changes a level: they held since _clock.
                elapsed = now - self._clock
                self._busy_slot_s += len(self._held) * elapsed
                self._queued_s += len(self._queue) * elapsed
            self._clock = now
        return now if now is not None else self._clock

    def _new_ticket(self) -> int:
        self._last_ticket += 1
        return self._last_ticket

    def _takers(self, now: float) -> list[PodState]:
        # The hard conditions are checked here, not only by the scheduler's filters, so a
        # custom scheduler can never break the budget or send to an ejected pod.
        return self._store.list(lambda pod: pod.takes_work(now))

    def _capacity(self, now: float) -> int:
        """Slots of the pods that could take work (ignoring how many are busy)."""
        return sum(
            p.budget.capacity for p in self._store if p.schedulable and p.breaker.admits(now)
        )

    def _pick(self, request: Request, now: float) -> PodState | None:
        takers = self._takers(now)
        if not takers:
            return None
        pod = self.scheduler.pick(takers, request, now)
        if pod is None or pod.id in request.exclude or not pod.takes_work(now):
            return None
        return pod

    def _grant(self, pod: PodState, ticket: int, request: Request, now: float) -> Slot:
        slot = Slot(ticket, pod.id, pod.url, request.audio_seconds)
        pod.acquire(request.audio_seconds)
        pod.breaker.on_grant(ticket, now)
        self._held[ticket] = _Held(slot, now, pod.budget.epoch)
        self.counters.granted += 1
        return slot

    def _earlier_waiter_can_go(self, request: Request, now: float) -> bool:
        """Would a new request jump ahead of a waiting ticket that could be served?

        Only possible when time alone created room (a cool-down ended) since the last
        dispatch; the new request then queues behind, and the next release, upsert or
        poll serves everyone in order.
        """
        takers: list[PodState] | None = None
        for waiter in self._queue.in_order():
            if waiter.priority > request.priority:
                break
            if waiter.deadline <= now:
                continue
            if takers is None:
                takers = self._takers(now)
                if not takers:
                    return False
            if self.scheduler.candidates(takers, waiter.request, now):
                return True
        return False

    def _dispatch(self, now: float) -> list[Granted]:
        """Give free room to waiting tickets, best class and oldest first."""
        grants: list[Granted] = []
        for waiter in self._queue.in_order():
            if waiter.deadline <= now:
                continue  # left for expire() to report
            if not self._takers(now):
                break
            pod = self._pick(waiter.request, now)
            if pod is None:
                continue  # this ticket cannot use the free pods; later ones may
            self._queue.remove(waiter.ticket)
            grants.append(Granted(self._grant(pod, waiter.ticket, waiter.request, now)))
        return grants
