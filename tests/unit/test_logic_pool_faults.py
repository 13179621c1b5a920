"""Property-based tests of the pool under random fault schedules: it loses nothing.

A hypothesis state machine drives one ``Pool`` through requests whose attempts end as
each pod's behaviour says: one pod never fails (``healthy``); the others fail fast with
any fault (5xx, bad answers, resets, timeouts), refuse for want of memory when holding
more than one request, answer at random, or are shared with other routers (busy half the
time, reporting their load); they flap in and out of readiness and leave
and come back. The shell's part (send, classify, ``release`` or ``retry``) is played
by the machine, which checks:

* no request fails while the never-failing pod exists and the deadline allows: a request
  gives up only past its deadline (never "every pod failed it", never for a cap), and a
  waiting ticket expires only at its deadline; once attempts are answered promptly, every
  request in the pool succeeds;
* a retried request is never granted on a pod that failed it (a fault, not a refusal for
  want of room);
* no slot leaks, no pod is ever above its budget, the healthy pod is never ejected, and
  no more pods are ejected than ``max_ejection_percent`` allows (at least one of two or
  more, never the last in rotation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from asrpool_router.logic.breaker import ejection_allowed
from asrpool_router.logic.errors import Outcome, OutcomeKind
from asrpool_router.logic.pod_load import PodLoad
from asrpool_router.logic.pool import (
    Again,
    GiveUp,
    GiveUpReason,
    Granted,
    PodSnapshot,
    Pool,
    PoolPolicy,
    Priority,
    Queued,
    Rejected,
    Slot,
)

HEALTHY = "healthy"
# "shared": other routers use the pod too; it says worker_busy half the time, with its load.
BEHAVIOURS = ("fails_fast", "short_of_memory", "flaky", "shared")
FAULTS = [
    OutcomeKind.UNREACHABLE,
    OutcomeKind.TIMEOUT,
    OutcomeKind.UNAVAILABLE,
    OutcomeKind.SERVER_ERROR,
    OutcomeKind.BAD_ANSWER,
    OutcomeKind.MODEL_LOAD_FAILED,
    OutcomeKind.OOM,
    OutcomeKind.BUSY,
]
time_steps = st.sampled_from([0.0, 0.3, 1.0, 2.5, 5.0])


@dataclass
class Open:
    """What the shell knows of one request still open."""

    deadline: float  # arrival + queue timeout + request timeout
    wait_deadline: float | None = None  # while waiting: when its ticket may expire
    failed_on: set[str] = field(default_factory=set)  # pods whose fault put it off them


class FaultyPoolMachine(RuleBasedStateMachine):
    @initialize(
        behaviours=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=3),
        per_pod=st.integers(1, 3),
        max_queue=st.integers(2, 8),
        eject_after=st.integers(1, 3),
        max_ejection_percent=st.sampled_from([0.0, 34.0, 50.0, 100.0]),
        seed=st.integers(0, 2**16),
    )
    def setup(
        self,
        behaviours: list[str],
        per_pod: int,
        max_queue: int,
        eject_after: int,
        max_ejection_percent: float,
        seed: int,
    ) -> None:
        self.policy = PoolPolicy(
            per_pod=per_pod,
            max_queue=max_queue,
            queue_timeout_s=6.0,
            request_timeout_s=10.0,
            breaker_failures=eject_after,
            breaker_cooldown_s=2.0,
            breaker_max_cooldown_s=8.0,
            max_ejection_percent=max_ejection_percent,
            budget_increase_after=2,
        )
        self.pool = Pool("whisper", self.policy, rng=random.Random(seed))
        self.behaviour = {HEALTHY: HEALTHY}
        self.behaviour.update({f"p{i}": b for i, b in enumerate(behaviours)})
        self.ready = dict.fromkeys(self.behaviour, True)
        self.present = dict.fromkeys(self.behaviour, True)
        self.rng = random.Random(seed)
        self.now = 0.0
        self.open: dict[int, Open] = {}
        self.held: dict[int, Slot] = {}
        self.budget_at_grant: dict[int, int] = {}
        self.succeeded: set[int] = set()
        for pod in self.behaviour:
            self.take(self.pool.upsert_pod(pod, f"http://{pod}", now=self.now))

    # --- the shell's part --------------------------------------------------------------

    def take(self, grants: list[Granted]) -> None:
        """Grants go to waiting tickets: check them against what the shell knows."""
        snap = {p.id: p for p in self.pool.snapshot(self.now).pods}
        for grant in grants:
            slot = grant.slot
            request = self.open[slot.ticket]
            assert request.wait_deadline is not None, "granted a ticket that was not waiting"
            assert self.now < request.wait_deadline, "granted past its deadline"
            assert slot.pod_id not in request.failed_on, "sent back to a pod that failed it"
            assert snap[slot.pod_id].in_flight <= snap[slot.pod_id].budget
            assert slot.deadline == request.deadline
            request.wait_deadline = None
            self.hold(slot)

    def hold(self, slot: Slot) -> None:
        self.held[slot.ticket] = slot
        pods = self.pool.snapshot(self.now).pods
        self.budget_at_grant[slot.ticket] = next(p.budget for p in pods if p.id == slot.pod_id)

    def outcome_on(self, slot: Slot) -> Outcome:
        behaviour = self.behaviour[slot.pod_id]
        if behaviour == HEALTHY:
            return Outcome.of(OutcomeKind.OK)
        if behaviour == "fails_fast":
            return Outcome.of(self.rng.choice(FAULTS))
        if behaviour == "short_of_memory":
            in_flight = next(p.in_flight for p in self.pool.snapshot().pods if p.id == slot.pod_id)
            return Outcome.of(OutcomeKind.OOM if in_flight > 1 else OutcomeKind.OK)
        if behaviour == "shared":
            slots = self.policy.per_pod
            if self.rng.random() < 0.5:
                return Outcome.of(OutcomeKind.POD_FULL, load=PodLoad(slots, slots))
            return Outcome.of(OutcomeKind.OK, load=PodLoad(slots, self.rng.randint(0, slots)))
        return Outcome.of(self.rng.choice([OutcomeKind.OK, *FAULTS]))

    def answer(self, ticket: int) -> None:
        """The pod answers one attempt; the shell releases or retries."""
        slot = self.held.pop(ticket)
        budget_at_grant = self.budget_at_grant.pop(ticket)
        outcome = self.outcome_on(slot)
        before = self.pool.snapshot(self.now).pods
        if outcome.kind is OutcomeKind.OK:
            self.take(self.pool.release(slot, outcome, self.now))
            del self.open[ticket]
            self.succeeded.add(ticket)
            return
        request = self.open[ticket]
        verdict, grants = self.pool.retry(slot, outcome, self.now)
        self.check_ejection(slot.pod_id, before)
        if isinstance(verdict, GiveUp):
            assert verdict.reason is GiveUpReason.DEADLINE, (
                f"gave up ({verdict.reason}) while the healthy pod exists"
            )
            assert self.now >= request.deadline
            del self.open[ticket]
        else:
            assert isinstance(verdict, Again) and verdict.ticket == ticket
            if verdict.failed_over:
                request.failed_on.add(slot.pod_id)
            else:
                assert outcome.kind is OutcomeKind.POD_FULL or (
                    outcome.capacity and budget_at_grant > 1
                ), "a fault that did not fail over"
            request.wait_deadline = min(request.deadline, self.now + self.policy.queue_timeout_s)
        self.take(grants)

    def fire_timers(self) -> None:
        for expired in self.pool.expire(self.now):
            request = self.open.pop(expired.ticket)
            assert request.wait_deadline is not None and self.now >= request.wait_deadline
        self.take(self.pool.poll(self.now))

    # --- rules -------------------------------------------------------------------------

    @rule(audio=st.floats(0.0, 30.0), priority=st.sampled_from(list(Priority)))
    def submit(self, audio: float, priority: Priority) -> None:
        result = self.pool.submit(audio_seconds=audio, priority=priority, now=self.now)
        deadline = self.now + self.policy.queue_timeout_s + self.policy.request_timeout_s
        if isinstance(result, Granted):
            self.open[result.slot.ticket] = Open(deadline)
            self.hold(result.slot)
            assert result.slot.deadline == deadline
        elif isinstance(result, Queued):
            self.open[result.ticket] = Open(deadline, self.now + self.policy.queue_timeout_s)
        else:
            assert isinstance(result, Rejected)
            assert self.pool.queue_depth() >= self.policy.max_queue

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def an_attempt_ends(self, data: st.DataObject) -> None:
        self.answer(data.draw(st.sampled_from(sorted(self.held))))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def a_client_leaves_mid_attempt(self, data: st.DataObject) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.held)))
        self.budget_at_grant.pop(ticket)
        self.take(self.pool.release(self.held.pop(ticket), OutcomeKind.CANCELLED, self.now))
        del self.open[ticket]

    @rule(data=st.data())
    def a_waiting_client_leaves(self, data: st.DataObject) -> None:
        waiting = sorted(t for t, r in self.open.items() if r.wait_deadline is not None)
        if not waiting:
            return
        ticket = data.draw(st.sampled_from(waiting))
        self.take(self.pool.cancel(ticket, self.now))
        del self.open[ticket]

    @rule(dt=time_steps)
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.fire_timers()

    @rule(data=st.data(), ready=st.booleans(), present=st.booleans())
    def a_bad_pod_flaps(self, data: st.DataObject, ready: bool, present: bool) -> None:
        pod = data.draw(st.sampled_from(sorted(p for p in self.behaviour if p != HEALTHY)))
        if present:
            self.present[pod], self.ready[pod] = True, ready
            self.take(self.pool.upsert_pod(pod, f"http://{pod}", ready=ready, now=self.now))
        else:
            self.present[pod] = False
            self.pool.remove_pod(pod)

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def no_slot_leaks_and_no_pod_above_its_budget(self) -> None:
        snap = self.pool.snapshot(self.now)
        assert self.pool.in_flight() == len(self.held)
        assert self.pool.open_requests() == len(self.open)
        assert self.pool.queue_depth() == sum(
            1 for r in self.open.values() if r.wait_deadline is not None
        )
        for pod in snap.pods:
            assert pod.in_flight == sum(1 for s in self.held.values() if s.pod_id == pod.id)

    def check_ejection(self, pod_id: str, before: Sequence[PodSnapshot]) -> None:
        """An ejection that just happened was one the cap allowed."""
        now = self.pool.snapshot(self.now).pods
        after = next((p for p in now if p.id == pod_id), None)
        if after is None:
            return  # removed by discovery and now drained: nothing to check
        was = next(p for p in before if p.id == pod_id)
        in_rotation = [p for p in before if p.ready and not p.terminating and not p.removed]
        if after.ejections == was.ejections or was.breaker != "closed":
            return  # no new ejection, or a failed probe going back out
        if was in in_rotation:
            ejected = sum(1 for p in in_rotation if p.ejected)
            assert ejection_allowed(len(in_rotation), ejected, self.policy.max_ejection_percent)

    @invariant()
    def the_next_deadline_is_the_earliest_wait_deadline(self) -> None:
        waits = [r.wait_deadline for r in self.open.values() if r.wait_deadline is not None]
        assert self.pool.next_deadline() == min(waits, default=None)

    @invariant()
    def the_healthy_pod_is_never_ejected_and_one_pod_stays_in_rotation(self) -> None:
        pods = self.pool.snapshot(self.now).pods
        assert not next(p for p in pods if p.id == HEALTHY).ejected

    def teardown(self) -> None:
        if not hasattr(self, "pool"):
            return
        # From now on pods answer at once: every request still open whose deadlines have
        # not passed must succeed.
        started = self.now
        promised = {
            t
            for t, r in self.open.items()
            if r.deadline > started and (r.wait_deadline is None or r.wait_deadline > started)
        }
        for _ in range(2_000):  # bounded: far more than the open requests need
            if not self.open:
                break
            if self.held:
                self.answer(min(self.held))
            else:
                self.now += 0.25
                self.fire_timers()
        assert not self.open, f"requests never answered: {self.open}"
        assert self.pool.in_flight() == 0 and self.pool.queue_depth() == 0
        assert self.pool.open_requests() == 0
        assert math.isfinite(self.now)
        assert promised <= self.succeeded, f"failed while the healthy pod could serve: {promised}"


FaultyPoolMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, database=None
)
TestPoolLosesNothingUnderFaults = FaultyPoolMachine.TestCase
