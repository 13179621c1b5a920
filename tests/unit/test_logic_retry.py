"""The retry / failover decision (asrpool_router.logic.retry)."""

from __future__ import annotations

import random

import pytest

from asrpool.wire import ErrorCode
from asrpool_router.logic.errors import Outcome, OutcomeKind
from asrpool_router.logic.retry import Backoff, GiveUp, RetryNow, RetryPolicy, decide


class FixedRng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


POLICY = RetryPolicy(max_attempts=4, backoff_base_s=0.2, backoff_cap_s=5.0)

CASES = [
    # (name, kind, code, attempt, other_pod_has_room, rng value, expected)
    (
        "oom_on_one_pod_fails_over_without_backoff",
        OutcomeKind.OOM,
        None,
        1,
        True,
        0.5,
        RetryNow(exclude="a"),
    ),
    ("oom_with_no_room_elsewhere_backs_off", OutcomeKind.OOM, None, 1, False, 0.5, Backoff(0.1)),
    (
        "oom_on_last_attempt_gives_up_gpu_oom",
        OutcomeKind.OOM,
        None,
        4,
        True,
        0.5,
        GiveUp(ErrorCode.GPU_OOM),
    ),
    ("unreachable_fails_over", OutcomeKind.UNREACHABLE, None, 2, True, 0.5, RetryNow(exclude="a")),
    (
        "unreachable_last_attempt_is_service_unavailable",
        OutcomeKind.UNREACHABLE,
        None,
        4,
        False,
        0.5,
        GiveUp(ErrorCode.SERVICE_UNAVAILABLE),
    ),
    (
        "overloaded_last_attempt_is_service_unavailable",
        OutcomeKind.OVERLOADED,
        None,
        4,
        True,
        0.5,
        GiveUp(ErrorCode.SERVICE_UNAVAILABLE),
    ),
    (
        "timeout_last_attempt_is_timeout",
        OutcomeKind.TIMEOUT,
        None,
        4,
        True,
        0.5,
        GiveUp(ErrorCode.TIMEOUT),
    ),
    (
        "model_load_failed_last_attempt",
        OutcomeKind.MODEL_LOAD_FAILED,
        None,
        4,
        True,
        0.5,
        GiveUp(ErrorCode.MODEL_LOAD_FAILED),
    ),
    (
        "server_error_last_attempt_is_internal_error",
        OutcomeKind.SERVER_ERROR,
        None,
        4,
        True,
        0.5,
        GiveUp(ErrorCode.INTERNAL_ERROR),
    ),
    (
        "invalid_audio_is_never_retried",
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_AUDIO,
        1,
        True,
        0.5,
        GiveUp(ErrorCode.INVALID_AUDIO),
    ),
    (
        "file_too_large_is_never_retried",
        OutcomeKind.PERMANENT,
        ErrorCode.FILE_TOO_LARGE,
        1,
        True,
        0.5,
        GiveUp(ErrorCode.FILE_TOO_LARGE),
    ),
    ("backoff_grows_exponentially", OutcomeKind.OVERLOADED, None, 3, False, 0.5, Backoff(0.4)),
    ("backoff_full_jitter_can_be_zero", OutcomeKind.OVERLOADED, None, 2, False, 0.0, Backoff(0.0)),
]


@pytest.mark.parametrize(
    ("kind", "code", "attempt", "room", "rng_value", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide_table(
    kind: OutcomeKind,
    code: ErrorCode | None,
    attempt: int,
    room: bool,
    rng_value: float,
    expected: object,
) -> None:
    decision = decide(
        Outcome.of(kind, code),
        attempt=attempt,
        pod_id="a",
        other_pod_has_room=room,
        policy=POLICY,
        rng=FixedRng(rng_value),
    )
    if isinstance(expected, Backoff):
        assert isinstance(decision, Backoff)
        assert decision.seconds == pytest.approx(expected.seconds)
    else:
        assert decision == expected


def test_backoff_is_capped() -> None:
    decision = decide(
        Outcome.of(OutcomeKind.OVERLOADED),
        attempt=30,
        pod_id="a",
        other_pod_has_room=False,
        policy=RetryPolicy(max_attempts=100, backoff_base_s=0.2, backoff_cap_s=5.0),
        rng=FixedRng(0.999),
    )
    assert isinstance(decision, Backoff)
    assert decision.seconds <= 5.0


def test_backoff_stays_within_full_jitter_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(1, 4):
        ceiling = POLICY.backoff_ceiling(attempt)
        for _ in range(50):
            decision = decide(
                Outcome.of(OutcomeKind.OOM),
                attempt=attempt,
                pod_id="a",
                other_pod_has_room=False,
                policy=POLICY,
                rng=rng,
            )
            assert isinstance(decision, Backoff)
            assert 0.0 <= decision.seconds <= ceiling


def test_backoff_longer_than_the_clients_deadline_gives_up() -> None:
    decision = decide(
        Outcome.of(OutcomeKind.OOM),
        attempt=1,
        pod_id="a",
        other_pod_has_room=False,
        policy=POLICY,
        rng=FixedRng(0.9),
        time_left_s=0.05,
    )
    assert decision == GiveUp(ErrorCode.GPU_OOM)


@pytest.mark.parametrize("kind", [OutcomeKind.OK, OutcomeKind.CANCELLED])
def test_success_and_cancellation_have_no_retry_decision(kind: OutcomeKind) -> None:
    with pytest.raises(ValueError):
        decide(
            Outcome.of(kind),
            attempt=1,
            pod_id="a",
            other_pod_has_room=True,
            policy=POLICY,
            rng=FixedRng(0.5),
        )


def test_retry_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
