"""The pool facade: admission, slots, grants to waiters (asrpool_router.logic.pool)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict

import pytest

from asrpool_contract.wire import ErrorCode
from asrpool_router.logic.errors import AttemptResult, Outcome, OutcomeKind, classify
from asrpool_router.logic.pod_load import PodLoad
from asrpool_router.logic.pods import PodState
from asrpool_router.logic.pool import (
    Again,
    Expired,
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
from asrpool_router.logic.request import Request
from asrpool_router.logic.scheduler import Scheduler
from asrpool_router.logic.scheduling import ScoredPod

REALTIME, INTERACTIVE, BATCH = Priority.REALTIME, Priority.INTERACTIVE, Priority.BATCH


class PoolHarness:
    """Builds a pool fluently: ``PoolHarness(per_pod=1).with_pods("a", "b").pool``."""

    def __init__(self, **policy: float) -> None:
        self.pool = Pool("whisper-small", PoolPolicy(**policy), rng=random.Random(0))  # type: ignore[arg-type]
        self.now = 0.0

    def with_pods(self, *pod_ids: str) -> PoolHarness:
        for pod_id in pod_ids:
            self.pool.upsert_pod(pod_id, f"http://{pod_id}:8000", now=self.now)
        return self

    def grant(self, audio: float = 10.0, priority: Priority = INTERACTIVE, **kw: object) -> Slot:
        result = self.submit(audio, priority, **kw)
        assert isinstance(result, Granted), result
        return result.slot

    def queue(self, audio: float = 10.0, priority: Priority = INTERACTIVE, **kw: object) -> int:
        result = self.submit(audio, priority, **kw)
        assert isinstance(result, Queued), result
        return result.ticket

    def submit(
        self, audio: float = 10.0, priority: Priority = INTERACTIVE, **kw: object
    ) -> Granted | Queued | Rejected:
        return self.pool.submit(audio_seconds=audio, priority=priority, now=self.now, **kw)  # type: ignore[arg-type]

    def pod(self, pod_id: str) -> PodSnapshot:
        return next(p for p in self.pool.snapshot().pods if p.id == pod_id)


def _tickets(grants: list[Granted]) -> list[int]:
    return [g.slot.ticket for g in grants]


def test_submit_grants_a_slot_when_a_pod_has_room() -> None:
    h = PoolHarness().with_pods("a")
    slot = h.grant(audio=12.5)
    assert (slot.pod_id, slot.url, slot.audio_seconds) == ("a", "http://a:8000", 12.5)
    assert h.pool.in_flight() == 1
    assert h.pod("a").in_flight_audio_seconds == 12.5


def test_requests_beyond_the_per_pod_budget_wait_in_the_queue() -> None:
    h = PoolHarness(per_pod=2).with_pods("a")
    h.grant()
    h.grant()
    h.queue()
    assert h.pool.in_flight() == 2
    assert h.pool.queue_depth() == 1


def test_a_released_slot_goes_to_the_best_class_then_the_oldest() -> None:
    h = PoolHarness(per_pod=1).with_pods("a")
    held = h.grant()
    batch = h.queue(priority=BATCH)
    first = h.queue(priority=INTERACTIVE)
    second = h.queue(priority=INTERACTIVE)
    realtime = h.queue(priority=REALTIME)
    order = []
    slot = held
    for _ in range(4):
        grants = h.pool.release(slot, OutcomeKind.OK, h.now)
        assert len(grants) == 1
        slot = grants[0].slot
        order.append(slot.ticket)
    assert order == [realtime, first, second, batch]


def test_queued_ticket_keeps_its_exclude_set_and_does_not_block_others() -> None:
    h = PoolHarness(per_pod=1).with_pods("a", "b")
    on_a = h.grant(exclude=frozenset({"b"}))
    h.grant(exclude=frozenset({"a"}))
    avoids_a = h.queue(priority=REALTIME, exclude=frozenset({"a"}))
    anywhere = h.queue(priority=BATCH)
    grants = h.pool.release(on_a, OutcomeKind.OK, h.now)
    assert _tickets(grants) == [anywhere]
    assert grants[0].slot.pod_id == "a"
    assert h.pool.waiting() == [avoids_a]


def test_grant_from_the_queue_carries_the_audio_seconds_of_the_waiting_request() -> None:
    h = PoolHarness(per_pod=1).with_pods("a")
    held = h.grant(audio=3.0)
    h.queue(audio=42.0)
    (grant,) = h.pool.release(held, OutcomeKind.OK, h.now)
    assert grant.slot.audio_seconds == 42.0
    assert h.pod("a").in_flight_audio_seconds == 42.0


def test_full_queue_rejects_with_a_retry_after_estimate() -> None:
    h = PoolHarness(per_pod=1, max_queue=2, queue_timeout_s=30.0, initial_hold_s=4.0)
    h.with_pods("a", "b")
    h.grant()
    h.grant()
    h.queue()
    h.queue()
    result = h.submit()
    assert result == Rejected(ErrorCode.QUEUE_FULL, 4.0)  # 2 queued × 4 s / 2 slots


def test_retry_after_learns_from_measured_hold_times() -> None:
    h = PoolHarness(per_pod=1, max_queue=1, initial_hold_s=1.0).with_pods("a")
    for _ in range(30):
        slot = h.grant()
        h.now += 20.0
        h.pool.release(slot, OutcomeKind.OK, h.now)
    h.grant()
    h.queue()
    result = h.submit()
    assert isinstance(result, Rejected)
    assert result.retry_after_s is not None and 19.0 <= result.retry_after_s <= 20.0


def test_submit_without_any_pod_queues_and_a_new_pod_gets_the_ticket() -> None:
    h = PoolHarness()
    ticket = h.queue()
    grants = h.pool.upsert_pod("a", "http://a:8000", now=1.0)
    assert _tickets(grants) == [ticket]


def test_full_queue_without_any_pod_is_service_unavailable() -> None:
    h = PoolHarness(max_queue=1)
    h.queue()
    assert h.submit() == Rejected(ErrorCode.SERVICE_UNAVAILABLE, None)


def test_no_queue_and_no_pod_is_service_unavailable() -> None:
    h = PoolHarness(max_queue=0)
    assert h.submit() == Rejected(ErrorCode.SERVICE_UNAVAILABLE, None)


def test_a_pod_turning_ready_grants_waiting_tickets() -> None:
    h = PoolHarness(per_pod=2)
    h.pool.upsert_pod("a", "http://a", ready=False, now=0.0)
    t1, t2, t3 = h.queue(), h.queue(), h.queue()
    grants = h.pool.upsert_pod("a", "http://a", ready=True, now=1.0)
    assert _tickets(grants) == [t1, t2]
    assert h.pool.waiting() == [t3]


def test_expire_reports_tickets_past_their_deadline_and_they_are_never_granted() -> None:
    h = PoolHarness(per_pod=1, queue_timeout_s=10.0).with_pods("a")
    held = h.grant()
    h.now = 1.0
    late = h.queue()
    h.now = 5.0
    fresh = h.queue()
    assert h.pool.next_deadline() == 11.0
    # The slot comes back after the first ticket's deadline but before expire() ran.
    grants = h.pool.release(held, OutcomeKind.OK, 11.5)
    assert _tickets(grants) == [fresh]
    assert h.pool.expire(11.5) == [Expired(late, ErrorCode.QUEUE_TIMEOUT, attempts=0)]
    assert h.pool.queue_depth() == 0
    assert h.pool.next_deadline() is None


def test_cancel_removes_a_waiting_ticket_and_ignores_unknown_ones() -> None:
    h = PoolHarness(per_pod=1).with_pods("a")
    held = h.grant()
    gone = h.queue()
    stays = h.queue()
    assert h.pool.cancel(gone) == []
    assert h.pool.cancel(gone) == []
    assert h.pool.cancel(12345) == []
    assert h.pool.cancel(held.ticket) == []  # granted already: the slot must be released
    assert h.pool.in_flight() == 1
    assert _tickets(h.pool.release(held, OutcomeKind.CANCELLED, h.now)) == [stays]


def test_releasing_a_slot_twice_frees_it_once() -> None:
    h = PoolHarness(per_pod=1).with_pods("a")
    held = h.grant()
    waiting = h.queue()
    assert _tickets(h.pool.release(held, OutcomeKind.OK, h.now)) == [waiting]
    assert h.pool.release(held, OutcomeKind.OK, h.now) == []
    assert h.pool.in_flight() == 1
    assert h.pod("a").in_flight == 1


def test_removing_a_busy_pod_keeps_its_slots_counted_until_they_return() -> None:
    h = PoolHarness(per_pod=2).with_pods("a", "b")
    on_a = h.grant(exclude=frozenset({"b"}))
    h.pool.remove_pod("a")
    assert h.pool.in_flight() == 1
    assert h.pod("a").removed is True
    assert h.grant().pod_id == "b"  # no new work for the removed pod
    h.pool.release(on_a, OutcomeKind.OK, h.now)
    assert [p.id for p in h.pool.snapshot().pods] == ["b"]
    assert h.pool.in_flight() == 1


def test_terminating_pod_finishes_its_work_but_gets_no_new_work() -> None:
    h = PoolHarness(per_pod=2).with_pods("a")
    held = h.grant()
    h.pool.upsert_pod("a", "http://a:8000", terminating=True)
    waiting = h.queue()
    assert h.pool.release(held, OutcomeKind.OK, h.now) == []
    assert h.pool.waiting() == [waiting]


def test_oom_at_the_budget_floor_fails_over_at_once_to_a_pod_with_room() -> None:
    h = PoolHarness(per_pod=1).with_pods("a")
    slot = h.grant()
    h.with_pods("b")
    outcome = classify(AttemptResult(status=503, error_code_header="gpu_oom"))
    verdict, grants = h.pool.retry(slot, outcome, h.now)
    assert verdict == Again(slot.ticket, failed_over=True)
    (grant,) = grants
    assert (grant.slot.ticket, grant.slot.pod_id, grant.slot.attempt) == (slot.ticket, "b", 2)
    assert h.pool.account.ooms == {"a": 1}
    assert h.pool.account.retries == {("oom", "failover"): 1}


def test_oom_above_the_floor_cuts_the_budget_and_may_come_back_to_the_same_pod() -> None:
    h = PoolHarness(per_pod=2).with_pods("a")
    first, second = h.grant(), h.grant()
    verdict, grants = h.pool.retry(first, Outcome.of(OutcomeKind.OOM), h.now)
    assert verdict == Again(first.ticket, failed_over=False)
    assert grants == []  # budget 2 → 1, and the other request still holds that one slot
    assert h.pod("a").budget == 1
    assert h.pool.account.retries == {("oom", "requeue"): 1}
    (grant,) = h.pool.release(second, OutcomeKind.OK, h.now)
    assert (grant.slot.ticket, grant.slot.pod_id) == (first.ticket, "a")


def test_a_failed_request_waits_for_a_busy_healthy_pod_in_its_old_place() -> None:
    h = PoolHarness(per_pod=1).with_pods("good")
    busy = h.grant()
    failing = h.with_pods("bad").grant()
    later = h.queue(exclude=frozenset({"bad"}))
    verdict, grants = h.pool.retry(failing, Outcome.of(OutcomeKind.SERVER_ERROR), h.now)
    assert verdict == Again(failing.ticket, failed_over=True) and grants == []
    assert h.pool.waiting() == [failing.ticket, later]  # it arrived first
    (grant,) = h.pool.release(busy, OutcomeKind.OK, h.now)
    assert (grant.slot.ticket, grant.slot.pod_id) == (failing.ticket, "good")
    assert h.pool.submit(audio_seconds=1, priority=INTERACTIVE, now=h.now) == Granted(
        Slot(later + 1, "bad", "http://bad:8000", 1, 1, h.now + 120 + 300)
    )


def test_a_request_every_pod_failed_gives_up_and_says_so() -> None:
    h = PoolHarness(per_pod=1).with_pods("a", "b")
    slot = h.grant()
    outcome = Outcome.of(OutcomeKind.UNREACHABLE)
    verdict, grants = h.pool.retry(slot, outcome, h.now)
    assert isinstance(verdict, Again)
    (retry,) = grants
    verdict, grants = h.pool.retry(retry.slot, outcome, h.now)
    assert verdict == GiveUp(ErrorCode.SERVICE_UNAVAILABLE, GiveUpReason.EVERY_POD_FAILED, 2, 2)
    assert grants == [] and h.pool.in_flight() == 0 and h.pool.open_requests() == 0
    # Counted where it was decided: one retry (a failover), one give-up, no OOM.
    account = h.pool.account
    assert (account.retries, account.give_ups, account.ooms) == (
        {("unreachable", "failover"): 1},
        {"every_pod_failed": 1},
        {},
    )


def test_a_request_past_its_deadline_gives_up() -> None:
    h = PoolHarness(per_pod=1, queue_timeout_s=10.0, request_timeout_s=20.0).with_pods("a", "b")
    slot = h.grant()
    assert slot.deadline == 30.0
    verdict, _ = h.pool.retry(slot, Outcome.of(OutcomeKind.TIMEOUT), 30.0)
    assert verdict == GiveUp(ErrorCode.TIMEOUT, GiveUpReason.DEADLINE, 1, 1)


def test_an_old_slot_of_a_retried_request_never_releases_its_new_one() -> None:
    h = PoolHarness(per_pod=1).with_pods("a", "b")
    first = h.grant()
    _, (second,) = h.pool.retry(first, Outcome.of(OutcomeKind.UNREACHABLE), h.now)
    assert second.slot.ticket == first.ticket and second.slot != first
    assert h.pool.release(first, OutcomeKind.OK, h.now) == []
    assert h.pool.in_flight() == 1
    with pytest.raises(ValueError, match="not held"):
        h.pool.retry(first, Outcome.of(OutcomeKind.UNREACHABLE), h.now)


def test_oom_halves_the_pods_budget_and_successes_restore_it() -> None:
    h = PoolHarness(per_pod=4, budget_increase_after=2).with_pods("a")
    slots = [h.grant() for _ in range(4)]
    for slot in slots:  # one burst of OOMs cuts once
        h.pool.release(slot, OutcomeKind.OOM, h.now)
    assert h.pod("a").budget == 2
    for expected in (2, 3, 3, 4):
        h.pool.release(h.grant(), OutcomeKind.OK, h.now)
        assert h.pod("a").budget == expected


def test_after_an_oom_the_pod_takes_no_more_than_its_reduced_budget() -> None:
    h = PoolHarness(per_pod=4).with_pods("a")
    slots = [h.grant() for _ in range(4)]
    h.pool.release(slots[0], OutcomeKind.OOM, h.now)  # budget 4 → 2, 3 still in flight
    h.queue()
    assert h.pool.release(slots[1], OutcomeKind.OK, h.now) == []  # 2 in flight: full
    assert len(h.pool.release(slots[2], OutcomeKind.OK, h.now)) == 1
    assert h.pod("a").in_flight == 2


def test_repeated_connection_failures_eject_the_pod_until_its_probe_succeeds() -> None:
    h = PoolHarness(per_pod=4, breaker_failures=2, breaker_cooldown_s=10.0).with_pods("a", "b")
    for _ in range(2):
        h.pool.release(h.grant(exclude=frozenset({"b"})), OutcomeKind.UNREACHABLE, h.now)
    assert h.pod("a").ejected is True
    assert (h.pod("a").ejection_reason, h.pod("a").ejected_for_s) == ("unreachable", 10.0)
    waiting = [h.queue(exclude=frozenset({"b"})), h.queue(exclude=frozenset({"b"}))]
    assert h.pool.next_wakeup() == 10.0
    assert h.pool.poll(9.0) == []
    probe = h.pool.poll(10.0)
    assert _tickets(probe) == [waiting[0]]  # one probe only
    assert h.pool.poll(11.0) == []
    grants = h.pool.release(probe[0].slot, OutcomeKind.OK, 12.0)
    assert _tickets(grants) == [waiting[1]]
    assert h.pod("a").ejected is False


def test_a_failed_probe_ejects_again_for_longer() -> None:
    h = PoolHarness(breaker_failures=1, breaker_cooldown_s=10.0).with_pods("a", "b")
    only_a = frozenset({"b"})
    h.pool.release(h.grant(exclude=only_a), OutcomeKind.TIMEOUT, 0.0)
    h.now = 10.0
    probe = h.grant(exclude=only_a)
    h.pool.release(probe, OutcomeKind.UNREACHABLE, 10.0)
    h.now = 29.0
    h.queue(exclude=only_a)
    assert h.pool.poll(29.0) == []
    assert len(h.pool.poll(30.0)) == 1


def _eject_a_while_b_is_busy(h: PoolHarness) -> None:
    h.grant(exclude=frozenset({"a"}))  # b: full for the rest of the test
    h.pool.release(h.grant(exclude=frozenset({"b"})), OutcomeKind.UNREACHABLE, 0.0)
    assert h.pod("a").ejected


def test_a_new_request_does_not_jump_ahead_of_a_waiter_when_a_cool_down_ends() -> None:
    h = PoolHarness(per_pod=1, breaker_failures=1, breaker_cooldown_s=10.0).with_pods("a", "b")
    _eject_a_while_b_is_busy(h)
    waiting = h.queue(priority=INTERACTIVE)
    h.now = 11.0
    assert isinstance(h.submit(priority=BATCH), Queued)  # the probe belongs to the waiter
    assert _tickets(h.pool.poll(11.0)) == [waiting]


def test_a_higher_class_request_may_pass_a_lower_class_waiter() -> None:
    h = PoolHarness(per_pod=1, breaker_failures=1, breaker_cooldown_s=10.0).with_pods("a", "b")
    _eject_a_while_b_is_busy(h)
    h.queue(priority=BATCH)
    h.now = 11.0
    assert isinstance(h.submit(priority=REALTIME), Granted)


def test_a_pool_of_one_pod_never_ejects_it() -> None:
    h = PoolHarness(breaker_failures=1).with_pods("a")
    h.pool.release(h.grant(), OutcomeKind.UNREACHABLE, 0.0)
    assert h.pod("a").ejected is False and h.pod("a").accepting is True


def test_ejection_stops_at_the_pools_max_ejection_percent() -> None:
    h = PoolHarness(breaker_failures=1, max_ejection_percent=50).with_pods("a", "b", "c", "d")
    for pod in "abc":
        others = frozenset("abcd") - {pod}
        h.pool.release(h.grant(exclude=others), OutcomeKind.SERVER_ERROR, 0.0)
    assert [h.pod(p).ejected for p in "abcd"] == [True, True, False, False]
    assert h.pool.account.ejections == {"server_error": 2}
    # c stays in rotation, asking again on each fault: once a probe brings a back, c goes.
    h.now = 5.0
    probe = h.grant(exclude=frozenset("bcd"))
    h.pool.release(probe, OutcomeKind.OK, 5.0)
    h.pool.release(h.grant(exclude=frozenset("abd")), OutcomeKind.SERVER_ERROR, 5.0)
    assert [h.pod(p).ejected for p in "abcd"] == [False, True, True, False]


def test_a_pod_not_ready_may_always_be_ejected() -> None:
    h = PoolHarness(breaker_failures=1).with_pods("a", "b")
    slot = h.grant(exclude=frozenset({"b"}))
    h.pool.upsert_pod("a", "http://a:8000", ready=False)
    h.pool.upsert_pod("b", "http://b:8000", ready=False)
    h.pool.release(slot, OutcomeKind.UNREACHABLE, 0.0)
    assert h.pod("a").ejected is True


def test_snapshot_reports_pods_and_queue() -> None:
    h = PoolHarness(per_pod=1).with_pods("a")
    slot = h.grant(audio=30.0)
    h.queue(priority=REALTIME)
    snap = h.pool.snapshot()
    assert snap.model == "whisper-small"
    assert snap.in_flight == 1
    assert snap.queue_depth == 1
    assert snap.queue_by_priority == {"realtime": 1, "interactive": 0, "batch": 0}
    assert [asdict(p) for p in snap.pods] == [
        {
            "id": "a",
            "url": "http://a:8000",
            "ready": True,
            "terminating": False,
            "removed": False,
            "budget": 1,
            "budget_ceiling": 1,
            "in_flight": 1,
            "in_flight_audio_seconds": 30.0,
            "ejected": False,
            "breaker": "closed",
            "ejection_reason": "",
            "ejected_for_s": 0.0,
            "ejections": 0,
            "consecutive_failures": 0,
            "reported_slots": None,
            "held_by_others": 0,
            "accepting": False,
        }
    ]
    h.pool.release(slot, Outcome.of(OutcomeKind.OK), 1.0)
    after = h.pool.snapshot()
    assert (after.in_flight, after.queue_depth) == (1, 0)  # the slot went to the waiter


class _EverythingOnFirstPod:
    """A broken custom strategy: ignores budgets, exclusions and readiness."""

    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        return list(pods)


class _First:
    def pick(self, scored: Sequence[ScoredPod]) -> PodState:
        return scored[0].pod


def test_a_custom_scheduler_cannot_break_the_budget_or_exclusions() -> None:
    scheduler = Scheduler(filters=[_EverythingOnFirstPod()], scorers=[], picker=_First())
    pool = Pool("m", PoolPolicy(per_pod=1), scheduler=scheduler)
    pool.upsert_pod("a", "http://a")
    assert isinstance(pool.submit(audio_seconds=1, priority=INTERACTIVE, now=0.0), Granted)
    assert isinstance(pool.submit(audio_seconds=1, priority=INTERACTIVE, now=0.0), Queued)
    pool.upsert_pod("b", "http://b")
    assert pool.snapshot().pods[0].in_flight == 1


class _Offered:
    """A filter that keeps every pod and remembers the pods it was offered."""

    def __init__(self) -> None:
        self.offered: list[list[str]] = []

    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        self.offered.append([p.id for p in pods])
        return list(pods)


@pytest.mark.parametrize(
    "state", ["not_ready", "terminating", "removed", "full", "ejected", "failed_this_request"]
)
def test_the_scheduler_is_offered_only_the_pods_that_may_take_the_request(state: str) -> None:
    # The hard conditions live in the pool alone; no scheduling plugin repeats them.
    seen = _Offered()
    scheduler = Scheduler(filters=[seen], scorers=[], picker=_First())
    pool = Pool("m", PoolPolicy(per_pod=2, breaker_failures=1), scheduler=scheduler)
    pool.upsert_pod("a", "http://a")
    pool.upsert_pod("b", "http://b")
    on_a = {"audio_seconds": 1.0, "priority": INTERACTIVE, "now": 0.0, "exclude": frozenset("b")}
    exclude: frozenset[str] = frozenset()
    if state == "not_ready":
        pool.upsert_pod("a", "http://a", ready=False)
    elif state == "terminating":
        pool.upsert_pod("a", "http://a", terminating=True)
    elif state == "removed":
        assert isinstance(pool.submit(**on_a), Granted)  # type: ignore[arg-type]
        pool.remove_pod("a")  # lingers with one slot in flight, one free
    elif state == "full":
        for _ in range(2):
            assert isinstance(pool.submit(**on_a), Granted)  # type: ignore[arg-type]
    elif state == "ejected":
        slot = pool.submit(**on_a)  # type: ignore[arg-type]
        assert isinstance(slot, Granted)
        pool.release(slot.slot, OutcomeKind.UNREACHABLE, 0.0)
    else:
        exclude = frozenset("a")
    seen.offered.clear()
    result = pool.submit(audio_seconds=1.0, priority=INTERACTIVE, now=0.0, exclude=exclude)
    assert isinstance(result, Granted) and result.slot.pod_id == "b"
    assert seen.offered == [["b"]]


@pytest.mark.parametrize("audio", [-1.0, float("nan"), float("inf")])
def test_invalid_audio_length_is_refused(audio: float) -> None:
    with pytest.raises(ValueError):
        PoolHarness().with_pods("a").submit(audio=audio)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_pod": 0},
        {"max_queue": -1},
        {"queue_timeout_s": 0.0},
        {"max_attempts": -1},
        {"max_ejection_percent": 101},
        {"request_timeout_s": 0.0},
        {"breaker_failures": 0},
        {"budget_decrease_factor": 1.5},
    ],
)
def test_invalid_pool_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PoolPolicy(**kwargs)  # type: ignore[arg-type]


def test_pool_without_injected_rng_is_reproducible() -> None:
    def run() -> list[str]:
        pool = Pool("m", PoolPolicy(per_pod=8))
        for name in "abcd":
            pool.upsert_pod(name, f"http://{name}")
        out = []
        for _ in range(12):
            result = pool.submit(audio_seconds=1.0, priority=INTERACTIVE, now=0.0)
            assert isinstance(result, Granted)
            out.append(result.slot.pod_id)
        return out

    assert run() == run()


def test_next_wakeup_is_none_when_nothing_waits_even_with_a_pod_in_cool_down() -> None:
    h = PoolHarness(breaker_failures=1, breaker_cooldown_s=10.0).with_pods("a", "b")
    h.pool.release(h.grant(exclude=frozenset({"b"})), OutcomeKind.UNREACHABLE, 0.0)
    assert h.pool.next_wakeup() is None
    assert h.pool.next_deadline() is None


def test_next_wakeup_is_the_queue_deadline_when_no_pod_is_ejected() -> None:
    h = PoolHarness(per_pod=1, queue_timeout_s=30.0).with_pods("a")
    h.grant()
    h.now = 2.0
    h.queue()
    assert h.pool.next_wakeup() == h.pool.next_deadline() == 32.0


def test_permanent_error_gives_up_with_its_code_even_with_room_elsewhere() -> None:
    h = PoolHarness().with_pods("a", "b")
    slot = h.grant()
    outcome = classify(AttemptResult(status=400, error_code_header="invalid_audio"))
    verdict, _ = h.pool.retry(slot, outcome, h.now)
    assert verdict == GiveUp(ErrorCode.INVALID_AUDIO, GiveUpReason.PERMANENT, 1, 0)
    assert h.pod(slot.pod_id).consecutive_failures == 0  # bad input proves the pod alive


def test_a_pool_waiting_for_its_first_pod_waits_its_cold_start_timeout() -> None:
    h = PoolHarness(queue_timeout_s=10.0, cold_start_timeout_s=600.0)
    h.queue()  # scaled to zero
    h.pool.upsert_pod("a", "http://a:8000", ready=False)
    h.now = 1.0
    h.queue()  # the pod is still loading
    assert h.pool.next_deadline() == 600.0
    assert h.pool.expire(599.0) == []
    grants = h.pool.upsert_pod("a", "http://a:8000", ready=True, now=599.0)
    assert [g.slot.deadline for g in grants] == [600.0 + 300.0, 601.0 + 300.0]
    h.now = 599.0
    h.queue()  # a warm pool: the queue timeout again
    assert h.pool.next_deadline() == 609.0


def test_without_a_cold_start_timeout_a_pool_without_pods_waits_the_queue_timeout() -> None:
    h = PoolHarness(queue_timeout_s=10.0, cold_start_timeout_s=0.0)
    h.queue()
    assert h.pool.next_deadline() == 10.0
    assert h.pool.expire(10.0) == [Expired(1, ErrorCode.SERVICE_UNAVAILABLE, attempts=0)]


def test_reconfigure_raises_budgets_at_their_ceiling_and_hands_room_to_waiters():

    pool = Pool("m", PoolPolicy(per_pod=1, max_queue=4))
    pool.upsert_pod("a", "http://a", now=0.0)
    first = pool.submit(audio_seconds=1, priority=Priority.INTERACTIVE, now=0.0)
    waiting = pool.submit(audio_seconds=1, priority=Priority.INTERACTIVE, now=0.0)
    assert isinstance(first, Granted) and isinstance(waiting, Queued)
    grants = pool.reconfigure(PoolPolicy(per_pod=2, max_queue=4), now=1.0)
    assert [g.slot.ticket for g in grants] == [waiting.ticket]
    assert pool.snapshot().pods[0].budget == 2
    for g in (first.slot, grants[0].slot):
        pool.release(g, OutcomeKind.OK, now=2.0)
    assert pool.in_flight() == 0


def test_reconfigure_keeps_a_budget_cut_by_oom_within_the_new_ceiling():

    pool = Pool("m", PoolPolicy(per_pod=4))
    pool.upsert_pod("a", "http://a", now=0.0)
    granted = pool.submit(audio_seconds=1, priority=Priority.INTERACTIVE, now=0.0)
    assert isinstance(granted, Granted)
    pool.release(granted.slot, OutcomeKind.OOM, now=1.0)
    assert pool.snapshot().pods[0].budget == 2
    pool.reconfigure(PoolPolicy(per_pod=8), now=2.0)
    assert pool.snapshot().pods[0].budget == 2  # learned capacity is kept
    pool.reconfigure(PoolPolicy(per_pod=1), now=3.0)
    assert pool.snapshot().pods[0].budget == 1


# --- a fleet of routers shares every pod (the pod's own load reports) ------------------


def _report(slots: int, in_flight: int) -> PodLoad:
    return PodLoad(slots=slots, in_flight=in_flight)


def test_a_pod_reporting_fewer_slots_than_the_budget_caps_what_this_router_sends() -> None:
    h = PoolHarness(per_pod=4).with_pods("a")
    h.pool.upsert_pod("a", "http://a:8000", load=_report(slots=2, in_flight=0))
    h.grant()
    h.grant()
    h.queue()
    assert h.pod("a").reported_slots == 2


def test_slots_other_routers_hold_keep_requests_waiting_until_the_report_is_stale() -> None:
    h = PoolHarness(per_pod=2, initial_hold_s=2.0).with_pods("a")
    # Another router holds both slots: this one waits instead of being refused.
    h.pool.upsert_pod("a", "http://a:8000", load=_report(slots=2, in_flight=2), now=0.0)
    assert h.pod("a").held_by_others == 2
    ticket = h.queue()
    assert h.pool.next_wakeup() == 1.0  # half the usual hold time
    assert h.pool.poll(0.9) == []
    (grant,) = h.pool.poll(1.0)  # forgotten: worth one try
    assert grant.slot.ticket == ticket


def test_a_busy_pod_is_no_failure_and_its_report_says_how_long_to_wait() -> None:
    h = PoolHarness(per_pod=1, breaker_failures=1, initial_hold_s=2.0).with_pods("a", "b")
    slot = h.grant(exclude=frozenset({"b"}))
    h.grant(exclude=frozenset({"a"}))  # b busy with our own request
    busy = classify(AttemptResult(status=503, error_code_header="worker_busy", load=_report(1, 1)))
    assert busy.kind is OutcomeKind.POD_FULL
    verdict, grants = h.pool.retry(slot, busy, h.now)
    assert verdict == Again(slot.ticket, failed_over=False) and grants == []
    a = h.pod("a")
    assert (a.ejected, a.consecutive_failures, a.budget) == (False, 0, 1)
    assert a.held_by_others == 1
    (grant,) = h.pool.poll(1.0)
    assert (grant.slot.ticket, grant.slot.pod_id) == (slot.ticket, "a")


def test_our_own_requests_are_not_counted_as_other_routers() -> None:
    h = PoolHarness(per_pod=3).with_pods("a")
    first, second = h.grant(), h.grant()
    # The pod answers `first`: it has 3 slots, one in use: `second`, ours.
    h.pool.release(first, Outcome.of(OutcomeKind.OK, load=_report(3, 1)), h.now)
    assert h.pod("a").held_by_others == 0
    h.grant()
    h.grant()  # two free slots, as the pod said
    h.queue()
    assert second.pod_id == "a"
