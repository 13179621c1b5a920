"""What the pool tells an autoscaler: load integrals over time, and the cold-start wait."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_contract.pool_spec import read_spec
from asrpool_router.logic.errors import OutcomeKind
from asrpool_router.logic.kube_view import pool_policy
from asrpool_router.logic.pool import Granted, Pool, PoolPolicy, Priority, Queued


def pool(**policy: float) -> Pool:
    return Pool("tiny.en", PoolPolicy(**policy), rng=random.Random(0))  # type: ignore[arg-type]


def submit(p: Pool, now: float) -> Granted | Queued:
    answer = p.submit(audio_seconds=1.0, priority=Priority.INTERACTIVE, now=now)
    assert isinstance(answer, Granted | Queued), answer
    return answer


# --- cold start


def test_a_ticket_for_a_pool_at_zero_waits_the_cold_start_timeout() -> None:
    p = pool(queue_timeout_s=10.0, cold_start_timeout_s=300.0)
    submit(p, now=0.0)
    assert p.next_deadline() == 300.0
    assert p.expire(299.0) == []


def test_a_ticket_while_every_pod_still_loads_waits_the_cold_start_timeout() -> None:
    p = pool(queue_timeout_s=10.0, cold_start_timeout_s=300.0)
    p.upsert_pod("a", "http://a", ready=False, now=0.0)
    p.upsert_pod("b", "http://b", terminating=True, now=0.0)
    submit(p, now=1.0)
    assert p.next_deadline() == 301.0


def test_a_ticket_behind_a_ready_pod_waits_the_queue_timeout() -> None:
    p = pool(per_pod=1, queue_timeout_s=10.0, cold_start_timeout_s=300.0)
    p.upsert_pod("a", "http://a", now=0.0)
    submit(p, now=0.0)  # takes the only slot
    submit(p, now=2.0)
    assert p.next_deadline() == 12.0


def test_the_pod_that_comes_up_gets_the_cold_ticket() -> None:
    p = pool(queue_timeout_s=10.0, cold_start_timeout_s=300.0)
    ticket = submit(p, now=0.0)
    assert isinstance(ticket, Queued)
    grants = p.upsert_pod("a", "http://a", now=200.0)  # after the queue timeout, within cold
    assert [g.slot.ticket for g in grants] == [ticket.ticket]


def test_the_cold_start_timeout_comes_from_the_asrpool() -> None:
    spec = {"concurrency": {"queueTimeoutSeconds": 30, "coldStartTimeoutSeconds": 900}}
    policy = pool_policy(read_spec({"model": "m", **spec}))
    assert (policy.queue_timeout_s, policy.cold_start_timeout_s) == (30.0, 900.0)
    default = pool_policy(read_spec({"model": "m"}))
    assert default.cold_start_timeout_s == PoolPolicy().cold_start_timeout_s == 600.0


def test_a_cold_start_timeout_must_not_be_negative() -> None:
    # 0 is allowed: no special wait (static backends, which nobody brings up from zero).
    with pytest.raises(ValueError, match="cold_start_timeout_s"):
        PoolPolicy(cold_start_timeout_s=-1.0)


# --- load integrals


def integrals(p: Pool, now: float) -> tuple[float, float]:
    snap = p.snapshot(now)
    return snap.busy_slot_seconds, snap.queued_seconds


def test_busy_slot_and_queued_seconds_integrate_the_levels_over_time() -> None:
    p = pool(per_pod=1)
    p.upsert_pod("a", "http://a", now=0.0)
    first = submit(p, now=0.0)  # 1 in flight from t=0
    submit(p, now=2.0)  # 1 queued from t=2
    assert integrals(p, 4.0) == (4.0, 2.0)
    assert isinstance(first, Granted)
    p.release(first.slot, OutcomeKind.OK, now=5.0)  # the waiter takes the slot at t=5
    assert integrals(p, 9.0) == (9.0, 3.0)


def test_reading_the_integrals_changes_nothing_but_the_clock() -> None:
    p = pool()
    p.upsert_pod("a", "http://a", now=0.0)
    submit(p, now=0.0)
    assert integrals(p, 3.0) == integrals(p, 3.0) == (3.0, 0.0)
    assert p.in_flight() == 1


@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 5.0, allow_nan=False), st.sampled_from(["submit", "release"])),
        max_size=30,
    )
)
def test_the_integrals_equal_the_sum_of_levels_times_durations(
    steps: list[tuple[float, str]],
) -> None:
    p = pool(per_pod=2, max_queue=100)
    p.upsert_pod("a", "http://a", now=0.0)
    now, busy, queued = 0.0, 0.0, 0.0
    held = []
    for gap, action in steps:
        busy += p.in_flight() * gap
        queued += p.queue_depth() * gap
        now += gap
        if action == "submit":
            answer = submit(p, now)
            if isinstance(answer, Granted):
                held.append(answer.slot)
        elif held:
            for grant in p.release(held.pop(0), OutcomeKind.OK, now):
                held.append(grant.slot)
    got_busy, got_queued = integrals(p, now)
    assert got_busy == pytest.approx(busy)
    assert got_queued == pytest.approx(queued)
