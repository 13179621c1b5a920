"""The per-pod circuit breaker (asrpool_router.logic.breaker)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.breaker import Breaker, BreakerPolicy, BreakerState
from asrpool_router.logic.errors import OutcomeKind

POLICY = BreakerPolicy(failure_threshold=3, base_cooldown_s=5.0, max_cooldown_s=30.0)


def _tripped(now: float = 0.0) -> Breaker:
    breaker = Breaker(POLICY)
    for ticket in range(3):
        breaker.on_result(ticket, OutcomeKind.UNREACHABLE, now)
    return breaker


def test_k_consecutive_connection_failures_eject_the_pod() -> None:
    breaker = Breaker(POLICY)
    breaker.on_result(1, OutcomeKind.UNREACHABLE, 0.0)
    breaker.on_result(2, OutcomeKind.TIMEOUT, 0.0)
    assert breaker.admits(0.0)
    breaker.on_result(3, OutcomeKind.UNREACHABLE, 0.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.admits(4.9)
    assert breaker.admits(5.0)


@pytest.mark.parametrize(
    "interrupting",
    [OutcomeKind.OK, OutcomeKind.OOM, OutcomeKind.PERMANENT, OutcomeKind.OVERLOADED],
)
def test_an_answer_from_the_pod_resets_the_failure_count(interrupting: OutcomeKind) -> None:
    breaker = Breaker(POLICY)
    breaker.on_result(1, OutcomeKind.UNREACHABLE, 0.0)
    breaker.on_result(2, OutcomeKind.UNREACHABLE, 0.0)
    breaker.on_result(3, interrupting, 0.0)
    breaker.on_result(4, OutcomeKind.UNREACHABLE, 0.0)
    breaker.on_result(5, OutcomeKind.UNREACHABLE, 0.0)
    assert breaker.state is BreakerState.CLOSED


def test_cancellations_neither_count_nor_reset() -> None:
    breaker = Breaker(POLICY)
    breaker.on_result(1, OutcomeKind.UNREACHABLE, 0.0)
    breaker.on_result(2, OutcomeKind.UNREACHABLE, 0.0)
    breaker.on_result(3, OutcomeKind.CANCELLED, 0.0)
    breaker.on_result(4, OutcomeKind.UNREACHABLE, 0.0)
    assert breaker.state is BreakerState.OPEN


def test_after_cool_down_only_one_probe_is_admitted() -> None:
    breaker = _tripped()
    breaker.on_grant(10, 5.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.admits(6.0)


def test_probe_success_closes_and_resets_cool_down_growth() -> None:
    breaker = _tripped()
    breaker.on_grant(10, 5.0)
    breaker.on_result(10, OutcomeKind.OK, 6.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admits(6.0)
    for ticket in range(3):
        breaker.on_result(20 + ticket, OutcomeKind.UNREACHABLE, 7.0)
    assert breaker.open_until == 12.0  # base cool-down again


def test_probe_failure_re_ejects_with_a_longer_cool_down() -> None:
    breaker = _tripped()
    cooldowns = []
    now = 5.0
    for probe in range(10, 15):
        breaker.on_grant(probe, now)
        breaker.on_result(probe, OutcomeKind.TIMEOUT, now)
        cooldowns.append(breaker.open_until - now)
        now = breaker.open_until
    assert cooldowns == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_cancelled_probe_lets_the_next_request_probe_at_once() -> None:
    breaker = _tripped()
    breaker.on_grant(10, 5.0)
    breaker.on_result(10, OutcomeKind.CANCELLED, 6.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.admits(6.0)


def test_results_of_requests_started_before_ejection_do_not_close_it() -> None:
    breaker = _tripped()
    breaker.on_result(99, OutcomeKind.OK, 1.0)
    assert breaker.state is BreakerState.OPEN
    breaker.on_grant(10, 5.0)
    breaker.on_result(98, OutcomeKind.OK, 5.5)
    assert breaker.state is BreakerState.HALF_OPEN


def test_grant_before_cool_down_end_is_not_a_probe() -> None:
    breaker = _tripped()
    breaker.on_grant(10, 1.0)
    assert breaker.state is BreakerState.OPEN


def test_an_oom_is_not_a_pod_fault() -> None:
    breaker = Breaker(POLICY)
    for ticket in range(10):
        breaker.on_result(ticket, OutcomeKind.OOM, 0.0)
    assert breaker.state is BreakerState.CLOSED


def test_cool_down_of_a_pod_dead_for_days_does_not_overflow() -> None:
    assert POLICY.cooldown(10_000) == 30.0
