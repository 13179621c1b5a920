"""The pool: admission, slots and grants for the pods serving one model.

This is the facade the asyncio shell calls; everything below it is reached through here.
A request asks for a slot (``submit``) and gets one at once (``Granted``), waits as a
ticket (``Queued``) or is turned away (``Rejected``). Every granted slot is given back
exactly once with ``release``, whatever happened (success, error, timeout, disconnect,
cancellation); a freed slot goes straight to the waiting tickets in priority order, and
the grants come back to the shell as ``list[Granted]`` to deliver to their waiters.

A request keeps its ticket from arrival to answer, across attempts. Shell loop, in short::

    r = pool.submit(audio_seconds=a, priority=p, now=now)
    # Queued: wait for the ticket in a Granted from release/retry/upsert_pod/cancel/poll,
    #         or for expire() to report it (answer its code).
    # Granted: send to slot.url (for at most the time left before slot.deadline), then
    outcome = classify(attempt_result, response_format)
    if outcome is OK:  deliver(pool.release(r.slot, outcome, now))
    else:              verdict, grants = pool.retry(r.slot, outcome, now)
                       # Again(ticket): wait for the ticket again (its grant may be in
                       # grants already); GiveUp: answer verdict.code. Then deliver(grants).

Timers: call ``expire(now)`` at ``next_deadline()``, and ``poll(now)`` at
``next_wakeup()``. ``poll`` matters when pods were ejected by their breaker: the end of
a cool-down frees capacity without any event, and only ``poll`` (or the next release or
health-check ``upsert_pod``) hands it to waiting tickets.

Policies, documented choices:

* A failed attempt is retried only on pods that have not failed this request, waiting in
  the queue for one with room (``retry.py``); it gives up when every pod the pool offers
  has failed it or its deadline (queue timeout + request timeout) has passed.
* A pod that keeps failing is ejected for a cool-down, never more than
  ``max_ejection_percent`` of the pool and never its last pod in rotation
  (``breaker.py``); a refusal for want of room cuts its budget instead (``budget.py``).

* No pod at all, or none ready / all ejected: ``submit`` still queues, because pods come
  back (a rollout, a restart, a cool-down ending) well within the queue timeout. Only a
  full queue rejects: ``queue_full`` with a Retry-After estimate (``retry_after.py``), or
  ``service_unavailable`` (no Retry-After) when no pod could take work anyway.
* Cold start: a ticket submitted while no pod is ready (scaled to zero, or every pod still
  loading its model) waits up to ``cold_start_timeout_s`` instead of ``queue_timeout_s``:
  the autoscaler is bringing a pod up, which for a large model takes minutes.
* Counts: the attempts' outcomes the pool decides on (OOM answers by pod, retries, give-ups,
  ejections) go to the ``PoolAccount`` it is given (``stats.py``), the one sink ``/stats``
  and ``/metrics`` read; the pool keeps no counters of its own.
* Load integrals for autoscalers: ``snapshot`` reports ``busy_slot_seconds`` (∫ slots in
  flight dt) and ``queued_seconds`` (∫ queue depth dt) since the pool was made, advanced to
  the ``now`` each call is given (levels only change inside calls, so between two calls they
  are constant and the integral is exact).
* A removed pod with slots in flight lingers until drained (``pods.py``), so ``release``
  always finds it and ``in_flight()`` equals the slots the shell holds.
* ``release`` of a slot that is not held (released twice) is a no-op returning ``[]``;
  slots of a request's successive attempts differ (``Slot.attempt``), so an old slot
  never releases a newer one.
* A ticket past its deadline is never granted, only reported by ``expire``; a ticket
  cancelled after it was granted is not waiting any more: its slot must be released.
* Priority is strict: a grant never goes to a ticket while an earlier one (higher class,
  or same class and older) that some pod could serve is waiting; a ticket that cannot
  use any free pod (all excluded) does not block the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from asrpool_contract.pool_spec import Concurrency, Ejection, Retry
from asrpool_contract.wire import ErrorCode

from .breaker import BreakerPolicy, ejection_allowed
from .budget import BudgetPolicy
from .errors import Outcome, OutcomeKind, PodVerdict, pod_verdict
from .pod_load import PodLoad
from .pods import PodState, PodStore
from .queueing import Waiter, WaitQueue
from .request import Priority, Request
from .retry import GiveUp, GiveUpReason, Requeue, RetryPolicy, decide
from .retry_after import HoldTime, retry_after_s
from .rng import Rng, SeededRng
from .scheduler import Scheduler, default_scheduler
from .stats import PoolAccount

_CONCURRENCY, _RETRY, _EJECTION = Concurrency(), Retry(), Ejection()

__all__ = [
    "Again",
    "Expired",
    "GiveUp",
    "GiveUpReason",
    "Granted",
    "PodSnapshot",
    "Pool",
    "PoolPolicy",
    "PoolSnapshot",
    "Priority",
    "Queued",
    "Rejected",
    "Slot",
]


@dataclass(frozen=True)
class PoolPolicy:
    """The knobs of one pool (from its ASRPool's spec.concurrency and spec.retry, whose
    defaults are these: ``asrpool_contract.pool_spec``)."""

    per_pod: int = _CONCURRENCY.per_pod
    max_queue: int = _CONCURRENCY.max_queue
    queue_timeout_s: float = _CONCURRENCY.queue_timeout_s
    # One attempt's longest run; with the queue timeout it makes a request's deadline.
    request_timeout_s: float = _RETRY.request_timeout_s
    # While no pod of the pool is ready (scaled to zero, pods still loading) a new request
    # waits up to this long instead of the queue timeout; 0: no special wait.
    cold_start_timeout_s: float = _CONCURRENCY.cold_start_timeout_s
    # A cap on attempts per request; 0: none (every pod failed it, or its deadline passed).
    max_attempts: int = _RETRY.max_attempts
    # Outlier ejection: consecutive faults before ejection, the cool-downs, the share of
    # the pool's pods that may be out at once.
    breaker_failures: int = _EJECTION.consecutive_failures
    breaker_cooldown_s: float = _EJECTION.base_ejection_s
    breaker_max_cooldown_s: float = _EJECTION.max_ejection_s
    max_ejection_percent: float = _EJECTION.max_ejection_percent
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
        if not self.request_timeout_s > 0:
            raise ValueError("request_timeout_s must be positive")
        if not self.cold_start_timeout_s >= 0:
            raise ValueError("cold_start_timeout_s must not be negative")
        if not 0 <= self.max_ejection_percent <= 100:
            raise ValueError("max_ejection_percent must be between 0 and 100")
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
        return RetryPolicy(max_attempts=self.max_attempts)


@dataclass(frozen=True)
class Slot:
    """One granted slot on one pod; release it exactly once.

    ``attempt`` counts the request's attempts (1 for the first); ``deadline`` is when
    the whole request must be answered, so the shell bounds the attempt by it.
    """

    ticket: int
    pod_id: str
    url: str
    audio_seconds: float
    attempt: int = 1
    deadline: float = math.inf


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
class Again:
    """After a failed attempt the request waits again as ``ticket`` (same place)."""

    ticket: int
    # The failed pod is out for this request (a fault), not only short of room.
    failed_over: bool


@dataclass(frozen=True)
class Expired:
    """A waiting ticket's deadline passed: answer ``code``."""

    ticket: int
    code: ErrorCode
    attempts: int


@dataclass
class _Request:
    """One client request, from arrival to answer (across attempts)."""

    audio_seconds: float
    priority: Priority
    exclude: frozenset[str]
    deadline: float
    attempts: int = 0
    failed_on: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Held:
    slot: Slot
    granted_at: float
    # The pod's budget epoch at grant time (see AdaptiveBudget.on_oom).
    budget_epoch: int
    # The pod held no more than its budget's floor: a refusal now is the pod's fault.
    at_floor: bool


@dataclass(frozen=True)
class PodSnapshot:
    """One pod as the pool sees it at the snapshot's ``now``."""

    id: str
    url: str
    ready: bool
    terminating: bool
    removed: bool  # deleted by discovery, lingering until its slots come back
    budget: int
    budget_ceiling: int
    in_flight: int
    in_flight_audio_seconds: float
    ejected: bool
    breaker: str  # BreakerState
    ejection_reason: str
    ejected_for_s: float  # cool-down left
    ejections: int
    consecutive_failures: int
    reported_slots: int | None
    held_by_others: int
    accepting: bool  # takes a new request now


@dataclass(frozen=True)
class PoolSnapshot:
    """The pool at ``now``, for ``/stats`` (``stats.pool_stats``) and ``/metrics``."""

    model: str
    pods: tuple[PodSnapshot, ...]
    queue_depth: int
    queue_by_priority: Mapping[str, int]  # realtime, interactive, batch
    in_flight: int
    capacity: int  # slots of the pods that could take work, busy or not
    # The load integrals (see the module docstring).
    busy_slot_seconds: float
    queued_seconds: float


class Pool:
    """Admission and slot accounting for one model's pods."""

    def __init__(
        self,
        model: str,
        policy: PoolPolicy,
        scheduler: Scheduler | None = None,
        rng: Rng | None = None,
        account: PoolAccount | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self.rng: Rng = rng if rng is not None else SeededRng()
        self.scheduler = scheduler if scheduler is not None else default_scheduler(self.rng)
        self._store = PodStore(policy.budget_policy(), policy.breaker_policy())
        self._queue = WaitQueue(policy.max_queue)
        self._held: dict[int, _Held] = {}
        # Every request not yet answered, waiting or holding a slot, by ticket.
        self._requests: dict[int, _Request] = {}
        self._last_ticket = 0
        # The latest ``now`` seen, for calls that take no time (upsert_pod, cancel, snapshot).
        self._clock = -math.inf
        # ∫ len(_held) dt and ∫ len(_queue) dt up to _clock (advanced by _tick).
        self._busy_slot_s = 0.0
        self._queued_s = 0.0
        self._hold_time = HoldTime(mean_s=policy.initial_hold_s)
        self.account = account if account is not None else PoolAccount()

    # --- pod membership -------------------------------------------------------------

    def upsert_pod(
        self,
        pod_id: str,
        url: str,
        *,
        ready: bool = True,
        terminating: bool = False,
        now: float | None = None,
        load: PodLoad | None = None,
    ) -> list[Granted]:
        """Add or update a pod from discovery / health checks; new room goes to waiters.

        ``load``: what the pod's health check reported of its slots and their use.
        """
        now = self._tick(now)
        pod = self._store.upsert(pod_id, url, ready=ready, terminating=terminating)
        if load is not None:
            pod.observe(load, now, self._trust_s())
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
            pod.breaker.policy = policy.breaker_policy()
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
        wait_s = self.policy.queue_timeout_s
        if self.policy.cold_start_timeout_s and not any(p.schedulable for p in self._store):
            # No pod is ready yet (a pool at zero, pods loading): wait for one to come up.
            wait_s = max(wait_s, self.policy.cold_start_timeout_s)
        record = _Request(
            audio_seconds,
            request.priority,
            request.exclude,
            deadline=now + wait_s + self.policy.request_timeout_s,
        )
        if not self._earlier_waiter_can_go(request, now):
            pod = self._pick(request, now)
            if pod is not None:
                ticket = self._new_ticket()
                self._requests[ticket] = record
                return Granted(self._grant(pod, ticket, now))
        if self._queue.full:
            if self._capacity(now) == 0:
                return Rejected(ErrorCode.SERVICE_UNAVAILABLE, None)
            return Rejected(ErrorCode.QUEUE_FULL, self.retry_after(now))
        ticket = self._new_ticket()
        self._requests[ticket] = record
        self._queue.push(Waiter(ticket, request, enqueued_at=now, deadline=now + wait_s))
        return Queued(ticket)

    def release(self, slot: Slot, outcome: OutcomeKind | Outcome, now: float) -> list[Granted]:
        """The request is done with ``slot`` (answered, or its client went away).

        Learns from ``outcome``, forgets the request and hands the room to waiting tickets.
        """
        now = self._tick(now)
        outcome = outcome if isinstance(outcome, Outcome) else Outcome.of(OutcomeKind(outcome))
        held = self._held.get(slot.ticket)
        if held is None or held.slot != slot:
            return []
        self._learn(held, outcome, now)
        self._requests.pop(slot.ticket, None)
        return self._dispatch(now)

    def retry(
        self, slot: Slot, outcome: Outcome, now: float
    ) -> tuple[Again | GiveUp, list[Granted]]:
        """An attempt failed: give ``slot`` back, learn, and decide what the request does.

        ``Again``: the request waits again under its ticket, in its old place; its grant
        may already be among the returned grants. ``GiveUp``: answer ``code`` (the
        request is forgotten). Either way, deliver the grants.
        """
        if outcome.kind in (OutcomeKind.OK, OutcomeKind.CANCELLED):
            raise ValueError(f"retry after {outcome.kind.value!r}: use release()")
        now = self._tick(now)
        held = self._held.get(slot.ticket)
        record = self._requests.get(slot.ticket)
        if held is None or held.slot != slot or record is None:
            raise ValueError(f"slot {slot} is not held")
        if outcome.kind is OutcomeKind.OOM:
            self.account.oom(slot.pod_id)
        verdict = self._learn(held, outcome, now)
        record.attempts += 1
        if verdict is PodVerdict.FAULT:
            record.failed_on.add(slot.pod_id)
        decision = decide(
            outcome,
            attempts=record.attempts,
            failed_on=frozenset(record.failed_on),
            in_rotation=frozenset(p.id for p in self._store if p.schedulable),
            now=now,
            deadline=record.deadline,
            queue_timeout_s=self.policy.queue_timeout_s,
            policy=self.policy.retry_policy(),
        )
        if isinstance(decision, GiveUp):
            del self._requests[slot.ticket]
            self.account.gave_up(decision.reason.value)
            return decision, self._dispatch(now)
        assert isinstance(decision, Requeue)
        failed_over = verdict is PodVerdict.FAULT
        self.account.retried(outcome.kind.value, "failover" if failed_over else "requeue")
        request = Request(record.audio_seconds, record.priority, record.exclude | decision.exclude)
        self._queue.push(
            Waiter(slot.ticket, request, enqueued_at=now, deadline=decision.deadline),
            admitted=True,
        )
        return Again(slot.ticket, failed_over), self._dispatch(now)

    def cancel(self, ticket: int, now: float | None = None) -> list[Granted]:
        """A waiting ticket's client went away. No-op if unknown or already granted."""
        now = self._tick(now)
        if self._queue.remove(ticket) is not None:
            self._requests.pop(ticket, None)
        return self._dispatch(now)

    def expire(self, now: float) -> list[Expired]:
        """Remove and report the waiting tickets whose deadline has passed.

        Waiting while no pod could serve at all is an outage, not a busy pool: those
        tickets get ``service_unavailable``, the others ``queue_timeout``.
        """
        now = self._tick(now)
        waiters = self._queue.expire(now)
        if not waiters:
            return []
        outage = self._capacity(now) == 0
        code = ErrorCode.SERVICE_UNAVAILABLE if outage else ErrorCode.QUEUE_TIMEOUT
        expired = []
        for w in waiters:
            record = self._requests.pop(w.ticket, None)
            expired.append(Expired(w.ticket, code, record.attempts if record else 0))
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
            for pod in self._store:
                times.extend(t for t in (pod.breaker.wakes_at(), pod.wakes_at()) if t is not None)
        return min(times, default=None)

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

    def open_requests(self) -> int:
        """Requests not yet answered (waiting or holding a slot)."""
        return len(self._requests)

    def waiting(self) -> list[int]:
        """Waiting tickets in service order."""
        return [w.ticket for w in self._queue.in_order()]

    def pods(self) -> list[PodState]:
        """The pods, removed-but-draining ones included (read only)."""
        return self._store.list()

    def snapshot(self, now: float | None = None) -> PoolSnapshot:
        """The pool as of ``now``, for ``/stats`` and metrics."""
        now = self._tick(now)
        pods = tuple(
            PodSnapshot(
                id=p.id,
                url=p.url,
                ready=p.ready,
                terminating=p.terminating,
                removed=p.removed,
                budget=p.budget.capacity,
                budget_ceiling=p.budget.policy.ceiling,
                in_flight=p.in_flight,
                in_flight_audio_seconds=p.in_flight_audio_seconds,
                ejected=p.breaker.ejected,
                breaker=p.breaker.state.value,
                ejection_reason=p.breaker.reason if p.breaker.ejected else "",
                ejected_for_s=max(0.0, p.breaker.open_until - now) if p.breaker.ejected else 0.0,
                ejections=p.breaker.ejections,
                consecutive_failures=p.breaker.failures,
                reported_slots=p.reported_slots,
                held_by_others=p.others_at(now),
                accepting=p.takes_work(now),
            )
            for p in self._store
        )
        return PoolSnapshot(
            model=self.model,
            pods=pods,
            queue_depth=len(self._queue),
            queue_by_priority={
                p.name.lower(): n for p, n in self._queue.depth_by_priority().items()
            },
            in_flight=len(self._held),
            capacity=self._capacity(now),
            busy_slot_seconds=self._busy_slot_s,
            queued_seconds=self._queued_s,
        )

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
        # The hard conditions (ready, not terminating, room, not ejected: ``takes_work``)
        # are checked here and only here: the scheduler sees no other pod, so no strategy
        # can break a budget or send to an ejected pod.
        return self._store.list(lambda pod: pod.takes_work(now))

    def _capacity(self, now: float) -> int:
        """Slots of the pods that could take work (ignoring how many are busy)."""
        return sum(p.limit for p in self._store if p.schedulable and p.breaker.admits(now))

    def _pick(self, request: Request, now: float) -> PodState | None:
        return self.scheduler.pick(_untried(self._takers(now), request), request, now)

    def _grant(self, pod: PodState, ticket: int, now: float) -> Slot:
        record = self._requests[ticket]
        slot = Slot(
            ticket,
            pod.id,
            pod.url,
            record.audio_seconds,
            attempt=record.attempts + 1,
            deadline=record.deadline,
        )
        at_floor = pod.budget.capacity <= pod.budget.policy.floor
        pod.acquire(record.audio_seconds)
        pod.breaker.on_grant(ticket, now)
        self._held[ticket] = _Held(slot, now, pod.budget.epoch, at_floor)
        return slot

    def _learn(self, held: _Held, outcome: Outcome, now: float) -> PodVerdict:
        """Give the slot back and let the pod's budget and breaker learn from the outcome."""
        slot = held.slot
        del self._held[slot.ticket]
        kind = outcome.kind
        verdict = pod_verdict(outcome, budget_at_floor=held.at_floor)
        pod = self._store.get(slot.pod_id)
        if pod is not None:
            pod.release(slot.audio_seconds)
            if outcome.load is not None:
                pod.observe(outcome.load, now, self._trust_s())
            if outcome.capacity:
                pod.budget.on_oom(held.budget_epoch)
            elif kind is OutcomeKind.OK:
                pod.budget.on_success()
            if pod.breaker.on_result(slot.ticket, verdict, now, kind.value) and self._may_eject(
                pod
            ):
                pod.breaker.eject(now, kind.value)
                self.account.ejected(kind.value)
            self._store.forget_if_drained(pod.id)
        if kind is not OutcomeKind.CANCELLED:
            self._hold_time.observe(now - held.granted_at)
        return verdict

    def _trust_s(self) -> float:
        # Others' requests are, on average, half way through a hold when reported.
        return min(2.0, max(0.05, self._hold_time.mean_s / 2))

    def _may_eject(self, pod: PodState) -> bool:
        if not pod.schedulable:
            return True  # out of rotation already: ejecting it takes nothing away
        in_rotation = [p for p in self._store if p.schedulable]
        ejected = sum(1 for p in in_rotation if p.breaker.ejected)
        return ejection_allowed(len(in_rotation), ejected, self.policy.max_ejection_percent)

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
            if self.scheduler.candidates(_untried(takers, waiter.request), waiter.request, now):
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
            grants.append(Granted(self._grant(pod, waiter.ticket, now)))
        return grants


def _untried(pods: list[PodState], request: Request) -> list[PodState]:
    """The pods the request has not failed on: a retry lands somewhere else."""
    return [pod for pod in pods if pod.id not in request.exclude]
