"""Outlier ejection of one pod (asrpool_router.logic.breaker)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.breaker import Breaker, BreakerPolicy, BreakerState, ejection_allowed
from asrpool_router.logic.errors import PodVerdict

POLICY = BreakerPolicy(failure_threshold=3, base_cooldown_s=5.0, max_cooldown_s=30.0)
ALIVE, FAULT, NEUTRAL = PodVerdict.ALIVE, PodVerdict.FAULT, PodVerdict.NEUTRAL


def _fail(breaker: Breaker, ticket: int, now: float) -> None:
    """A fault; eject when the breaker asks (as a pool with room to spare does)."""
    if breaker.on_result(ticket, FAULT, now, "unreachable"):
        breaker.eject(now, "unreachable")


def _ejected(now: float = 0.0) -> Breaker:
    breaker = Breaker(POLICY)
    for ticket in range(3):
        _fail(breaker, ticket, now)
    return breaker


def test_k_faults_in_a_row_ask_for_ejection_and_eject_sets_the_cool_down() -> None:
    breaker = Breaker(POLICY)
    assert breaker.on_result(1, FAULT, 0.0, "server_error") is False
    assert breaker.on_result(2, FAULT, 0.0, "bad_answer") is False
    assert breaker.admits(0.0)
    assert breaker.on_result(3, FAULT, 0.0, "oom") is True
    assert breaker.state is BreakerState.CLOSED  # only the pool may take it out
    breaker.eject(0.0, "oom")
    assert (breaker.state, breaker.reason, breaker.ejections) == (BreakerState.OPEN, "oom", 1)
    assert not breaker.admits(4.9)
    assert breaker.admits(5.0)


def test_a_pod_the_pool_keeps_asks_again_on_its_next_fault() -> None:
    breaker = Breaker(POLICY)
    for ticket in range(3):
        breaker.on_result(ticket, FAULT, 0.0)
    assert breaker.on_result(4, FAULT, 0.0) is True
    assert breaker.on_result(5, ALIVE, 0.0) is False  # a success forgives everything
    assert breaker.failures == 0


def test_an_answer_from_the_pod_resets_the_failure_count() -> None:
    breaker = Breaker(POLICY)
    breaker.on_result(1, FAULT, 0.0)
    breaker.on_result(2, FAULT, 0.0)
    breaker.on_result(3, ALIVE, 0.0)
    assert breaker.on_result(4, FAULT, 0.0) is False
    assert breaker.on_result(5, FAULT, 0.0) is False


def test_neutral_results_neither_count_nor_reset() -> None:
    breaker = Breaker(POLICY)
    breaker.on_result(1, FAULT, 0.0)
    breaker.on_result(2, FAULT, 0.0)
    assert breaker.on_result(3, NEUTRAL, 0.0) is False
    assert breaker.on_result(4, FAULT, 0.0) is True


def test_after_cool_down_only_one_probe_is_admitted() -> None:
    breaker = _ejected()
    breaker.on_grant(10, 5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.admits(6.0)


def test_probe_success_closes_and_resets_cool_down_growth() -> None:
    breaker = _ejected()
    breaker.on_grant(10, 5.0)
    breaker.on_result(10, ALIVE, 6.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admits(6.0)
    for ticket in range(3):
        _fail(breaker, 20 + ticket, 7.0)
    assert breaker.open_until == 12.0  # base cool-down again


def test_probe_failure_re_ejects_with_a_longer_cool_down() -> None:
    breaker = _ejected()
    cooldowns = []
    now = 5.0
    for probe in range(10, 15):
        breaker.on_grant(probe, now)
        assert breaker.on_result(probe, FAULT, now, "timeout") is False  # re-ejected itself
        assert breaker.state is BreakerState.OPEN and breaker.reason == "timeout"
        cooldowns.append(breaker.open_until - now)
        now = breaker.open_until
    assert cooldowns == [10.0, 20.0, 30.0, 30.0, 30.0]
    assert breaker.ejections == 6


def test_a_neutral_probe_lets_the_next_request_probe_at_once() -> None:
    breaker = _ejected()
    breaker.on_grant(10, 5.0)
    breaker.on_result(10, NEUTRAL, 6.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.admits(6.0)


def test_results_of_requests_started_before_ejection_do_not_close_it() -> None:
    breaker = _ejected()
    breaker.on_result(99, ALIVE, 1.0)
    assert breaker.state is BreakerState.OPEN
    breaker.on_grant(10, 5.0)
    breaker.on_result(98, ALIVE, 5.5)
    assert breaker.state is BreakerState.HALF_OPEN


def test_grant_before_cool_down_end_is_not_a_probe() -> None:
    breaker = _ejected()
    breaker.on_grant(10, 1.0)
    assert breaker.state is BreakerState.OPEN


def test_cool_down_of_a_pod_dead_for_days_does_not_overflow() -> None:
    assert POLICY.cooldown(10_000) == 30.0


EJECTION_CAP = [
    # (pods in rotation, already ejected, max percent, allowed)
    (1, 0, 100, False),  # a pool of one never ejects its pod
    (2, 0, 50, True),
    (2, 1, 50, False),
    (2, 0, 10, True),  # rounded down to 0, but at least one of two may go
    (2, 1, 100, False),  # never the last pod in rotation
    (3, 0, 50, True),
    (3, 1, 50, False),  # 50 % of 3 rounds down to one
    (4, 1, 50, True),
    (4, 2, 50, False),
    (4, 2, 100, True),
    (4, 3, 100, False),
    (10, 0, 0, True),  # 0 % still lets one go
    (10, 1, 0, False),
    (10, 2, 30, True),
    (10, 3, 30, False),
]


@pytest.mark.parametrize(("in_rotation", "ejected", "percent", "allowed"), EJECTION_CAP)
def test_ejection_never_takes_the_last_pods_of_a_pool(
    in_rotation: int, ejected: int, percent: float, allowed: bool
) -> None:
    assert ejection_allowed(in_rotation, ejected, percent) is allowed
