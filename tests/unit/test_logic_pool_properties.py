"""Property-based tests of the pool facade: random event sequences keep its invariants.

A hypothesis state machine drives one ``Pool`` through pods coming and going, requests
of every class arriving, slots coming back with every kind of outcome (OOMs shrink
budgets, failures eject pods), clients cancelling and deadlines passing, while a
reference model of what the shell would hold checks:

* no slot leaks: ``in_flight()`` and each pod's count equal the slots granted and not
  yet released; after releasing everything they are 0;
* a grant never pushes a pod past its current budget;
* priority and FIFO: a grant never goes to a ticket while an earlier waiting ticket
  (better class, or same class and older) could be served; within one call grants come
  in service order; after any event that frees room no servable ticket is left waiting;
* a ticket is granted at most once, never after its deadline, never to a pod it excludes;
* the queue never holds more than ``max_queue``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from asrpool_contract.wire import ErrorCode
from asrpool_router.logic.errors import OutcomeKind
from asrpool_router.logic.pool import (
    Granted,
    PodSnapshot,
    Pool,
    PoolPolicy,
    PoolSnapshot,
    Priority,
    Queued,
    Rejected,
    Slot,
)

# Few pods and small budgets, so that queues form and every path is reached.
POD_IDS = ("a", "b", "c")
# Pods are drawn as indexes and mapped onto the pods this example uses.
pod_indexes = st.integers(0, len(POD_IDS) - 1)
exclude_indexes = st.frozensets(pod_indexes, max_size=1)
priorities = st.sampled_from(list(Priority))
# Pod faults are over-weighted so that breakers trip and cool-downs end mid-example.
outcomes = st.one_of(
    st.sampled_from([OutcomeKind.UNREACHABLE, OutcomeKind.TIMEOUT]),
    st.sampled_from(list(OutcomeKind)),
)
# A few distinct steps hit "just before" and "just after" a cool-down or deadline.
time_steps = st.sampled_from([0.0, 0.4, 1.0, 2.5])


@dataclass(frozen=True)
class Waiting:
    priority: Priority
    seq: int
    exclude: frozenset[str]
    deadline: float
    audio_seconds: float

    @property
    def order(self) -> tuple[int, int]:
        return (int(self.priority), self.seq)


class PoolMachine(RuleBasedStateMachine):
    """The shell's view: slots it holds, tickets it waits on."""

    @initialize(
        per_pod=st.integers(1, 2),
        pods=st.integers(1, 3),
        queue_timeout_s=st.floats(1.0, 6.0),
        cold_start_timeout_s=st.sampled_from([0.0, 1.0, 4.0, 12.0]),
        max_queue=st.integers(0, 5),
        breaker_failures=st.integers(1, 3),
        increase_after=st.integers(1, 3),
        seed=st.integers(0, 2**16),
    )
    def setup(
        self,
        per_pod: int,
        pods: int,
        queue_timeout_s: float,
        cold_start_timeout_s: float,
        max_queue: int,
        breaker_failures: int,
        increase_after: int,
        seed: int,
    ) -> None:
        self.pod_ids = POD_IDS[:pods]
        self.policy = PoolPolicy(
            per_pod=per_pod,
            max_queue=max_queue,
            queue_timeout_s=queue_timeout_s,
            cold_start_timeout_s=cold_start_timeout_s,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=1.0,
            breaker_max_cooldown_s=4.0,
            budget_increase_after=increase_after,
        )
        self.pool = Pool("whisper", self.policy, rng=random.Random(seed))
        self.now = 0.0
        self.seq = 0
        self.outstanding: dict[int, Slot] = {}
        self.released: list[Slot] = []
        self.waiting: dict[int, Waiting] = {}
        self.ever_granted: set[int] = set()
        for pod in self.pod_ids:
            assert self.pool.upsert_pod(pod, f"http://{pod}", now=self.now) == []

    # --- helpers ----------------------------------------------------------------------

    def pod(self, index: int) -> str:
        return self.pod_ids[index % len(self.pod_ids)]

    def snapshot(self) -> PoolSnapshot:
        return self.pool.snapshot(self.now)

    def deadline(self) -> float:
        """A ticket queued now: while no pod is ready (none at all, loading, terminating or
        removed) the longer of the cold-start and queue timeouts, else the queue timeout."""
        cold = not any(
            p.ready and not p.terminating and not p.removed for p in self.snapshot().pods
        )
        wait = self.policy.queue_timeout_s
        if cold:
            wait = max(wait, self.policy.cold_start_timeout_s)
        return self.now + wait

    @staticmethod
    def could_take_work(pod: PodSnapshot) -> bool:
        """Ready and in rotation, or ejected with its cool-down over (its next grant is the
        probe), busy or not: a pod that will take work once it has room."""
        if not pod.ready or pod.terminating or pod.removed:
            return False
        return pod.breaker == "closed" or (pod.breaker == "open" and pod.ejected_for_s == 0)

    def servable(self, w: Waiting, snap: PoolSnapshot) -> bool:
        if w.deadline <= self.now:
            return False
        return any(p.accepting and p.id not in w.exclude for p in snap.pods)

    def take_grants(self, grants: list[Granted]) -> None:
        """Check grants handed to waiting tickets by one call, then record them."""
        snap = self.snapshot()
        budgets = {p.id: (p.in_flight, p.budget) for p in snap.pods}
        orders = []
        for grant in grants:
            slot = grant.slot
            assert slot.ticket in self.waiting, "granted a ticket that was not waiting"
            assert slot.ticket not in self.ever_granted, "granted a ticket twice"
            w = self.waiting.pop(slot.ticket)
            assert w.deadline > self.now, "granted a ticket past its deadline"
            assert slot.pod_id not in w.exclude, "granted on an excluded pod"
            assert slot.audio_seconds == w.audio_seconds
            in_flight, budget = budgets[slot.pod_id]
            assert in_flight <= budget, "a grant pushed a pod past its budget"
            orders.append(w.order)
            self.record(slot)
        assert orders == sorted(orders), "grants of one call out of service order"
        if orders:
            last = orders[-1]
            for w in self.waiting.values():
                if w.order < last:
                    assert not self.servable(w, snap), "an earlier servable ticket was skipped"

    def record(self, slot: Slot) -> None:
        self.ever_granted.add(slot.ticket)
        self.outstanding[slot.ticket] = slot

    def assert_settled(self) -> None:
        """After an event that hands out room, no servable ticket is left waiting."""
        snap = self.snapshot()
        for ticket, w in self.waiting.items():
            assert not self.servable(w, snap), f"ticket {ticket} could be served but waits"

    # --- rules ------------------------------------------------------------------------

    @rule(dt=time_steps, fire_timers=st.booleans())
    def advance(self, dt: float, fire_timers: bool) -> None:
        self.now += dt
        if fire_timers:
            # What the shell's timer does at next_deadline() / next_wakeup().
            self.expire()
            self.poll()

    @rule(index=pod_indexes, ready=st.booleans(), terminating=st.booleans())
    def upsert(self, index: int, ready: bool, terminating: bool) -> None:
        pod = self.pod(index)
        # Mostly healthy pods, so that work actually flows.
        ready = ready or not terminating
        grants = self.pool.upsert_pod(
            pod, f"http://{pod}", ready=ready, terminating=terminating and not ready, now=self.now
        )
        self.take_grants(grants)
        self.assert_settled()

    @rule(index=pod_indexes)
    def remove(self, index: int) -> None:
        self.pool.remove_pod(self.pod(index))

    @rule(audio=st.floats(0.0, 60.0), priority=priorities, avoid=exclude_indexes)
    def submit(self, audio: float, priority: Priority, avoid: frozenset[int]) -> None:
        exclude = frozenset(self.pod(i) for i in avoid)
        depth_before = self.pool.queue_depth()
        deadline = self.deadline()
        before = self.snapshot()
        # An earlier ticket (better or same class) that some pod could serve right now.
        earlier_servable = any(
            w.priority <= priority and self.servable(w, before) for w in self.waiting.values()
        )
        result = self.pool.submit(
            audio_seconds=audio, priority=priority, now=self.now, exclude=exclude
        )
        if isinstance(result, Granted):
            slot = result.slot
            assert slot.ticket not in self.ever_granted and slot.ticket not in self.waiting
            assert slot.pod_id not in exclude
            assert slot.audio_seconds == audio
            assert not earlier_servable, "a new request jumped the queue"
            pod = next(p for p in self.snapshot().pods if p.id == slot.pod_id)
            assert pod.in_flight <= pod.budget
            self.record(slot)
        elif isinstance(result, Queued):
            assert result.ticket not in self.ever_granted and result.ticket not in self.waiting
            self.seq += 1
            self.waiting[result.ticket] = Waiting(priority, self.seq, exclude, deadline, audio)
        else:
            assert isinstance(result, Rejected)
            assert depth_before == self.policy.max_queue, "rejected with room in the queue"
            # No pod could take work at all: the pool is out (503); else it is busy (429).
            out = not any(self.could_take_work(p) for p in before.pods)
            expected = ErrorCode.SERVICE_UNAVAILABLE if out else ErrorCode.QUEUE_FULL
            assert result.code is expected, (result, before.pods)
            if result.code is ErrorCode.QUEUE_FULL:
                assert result.retry_after_s is not None
                assert 1.0 <= result.retry_after_s <= math.ceil(self.policy.queue_timeout_s)

    @precondition(lambda self: bool(self.outstanding))
    @rule(data=st.data(), outcome=outcomes)
    def release(self, data: st.DataObject, outcome: OutcomeKind) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.outstanding)))
        slot = self.outstanding.pop(ticket)
        self.released.append(slot)
        grants = self.pool.release(slot, outcome, self.now)
        self.take_grants(grants)
        self.assert_settled()

    @rule(index=pod_indexes)
    def connection_failures(self, index: int) -> None:
        """A burst of requests to one pod fail to connect until its breaker ejects it."""
        pod = self.pod(index)
        others = frozenset(self.pod_ids) - {pod}
        for _ in range(self.policy.breaker_failures):
            deadline = self.deadline()
            result = self.pool.submit(
                audio_seconds=1.0, priority=Priority.REALTIME, now=self.now, exclude=others
            )
            if not isinstance(result, Granted):
                if isinstance(result, Queued):
                    self.seq += 1
                    self.waiting[result.ticket] = Waiting(
                        Priority.REALTIME,
                        self.seq,
                        others,
                        deadline,
                        1.0,
                    )
                return
            self.record(result.slot)
            self.outstanding.pop(result.slot.ticket)
            self.released.append(result.slot)
            self.take_grants(self.pool.release(result.slot, OutcomeKind.UNREACHABLE, self.now))
            self.assert_settled()

    @precondition(lambda self: bool(self.released))
    @rule(data=st.data())
    def release_again(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self.released))
        assert self.pool.release(slot, OutcomeKind.OK, self.now) == []

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        candidates = sorted(self.waiting) + sorted(self.outstanding) + [10_000]
        ticket = data.draw(st.sampled_from(candidates))
        grants = self.pool.cancel(ticket, self.now)
        self.waiting.pop(ticket, None)
        self.take_grants(grants)
        self.assert_settled()

    def expire(self) -> None:
        expired = self.pool.expire(self.now)
        for ticket in (e.ticket for e in expired):
            assert ticket in self.waiting, "expired a ticket that was not waiting"
            assert self.waiting.pop(ticket).deadline <= self.now
        assert all(w.deadline > self.now for w in self.waiting.values())

    def poll(self) -> None:
        self.take_grants(self.pool.poll(self.now))
        self.assert_settled()

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def no_slot_leaks(self) -> None:
        snap = self.snapshot()
        assert self.pool.in_flight() == len(self.outstanding)
        assert snap.in_flight == len(self.outstanding)
        per_pod: dict[str, int] = {}
        audio: dict[str, float] = {}
        for slot in self.outstanding.values():
            per_pod[slot.pod_id] = per_pod.get(slot.pod_id, 0) + 1
            audio[slot.pod_id] = audio.get(slot.pod_id, 0.0) + slot.audio_seconds
        for p in snap.pods:
            assert p.in_flight == per_pod.get(p.id, 0)
            assert p.in_flight_audio_seconds == pytest.approx(audio.get(p.id, 0.0))
            if p.removed:
                assert p.in_flight > 0, "a drained removed pod was not dropped"
        # Every held slot still has its pod (removed pods linger until drained).
        assert set(per_pod) <= {p.id for p in snap.pods}

    @invariant()
    def queue_matches_the_waiters(self) -> None:
        depth = self.pool.queue_depth()
        assert depth <= self.policy.max_queue
        assert depth == len(self.waiting)
        expected = sorted(self.waiting, key=lambda t: self.waiting[t].order)
        assert self.pool.waiting() == expected

    def teardown(self) -> None:
        if not hasattr(self, "pool"):
            return
        # Give every slot back; freed room goes to waiters, whose slots come back too.
        while self.outstanding:
            ticket = min(self.outstanding)
            slot = self.outstanding.pop(ticket)
            self.take_grants(self.pool.release(slot, OutcomeKind.OK, self.now))
        assert self.pool.in_flight() == 0
        assert all(p.in_flight == 0 for p in self.snapshot().pods)
        assert all(not p.removed for p in self.snapshot().pods)
        leftover = [e.ticket for e in self.pool.expire(self.now + 1e6)]
        assert sorted(leftover) == sorted(self.waiting)
        assert self.pool.queue_depth() == 0


# ~2 s on one core. Enough to reach the rare paths (a cool-down ending between two
# submits); database=None keeps runs from writing into the repository.
PoolMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None, database=None
)
TestPoolInvariants = PoolMachine.TestCase
