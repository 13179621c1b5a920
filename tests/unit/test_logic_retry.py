"""The retry decision (asrpool_router.logic.retry)."""

from __future__ import annotations

import pytest

from asrpool_contract.wire import ErrorCode
from asrpool_router.logic.errors import Outcome, OutcomeKind
from asrpool_router.logic.retry import (
    GiveUp,
    GiveUpReason,
    Requeue,
    RetryPolicy,
    decide,
)

PODS = frozenset({"a", "b", "c"})
NOW, DEADLINE, QUEUE_TIMEOUT = 10.0, 100.0, 30.0

CASES = [
    # (name, kind, code, attempts, failed_on, in rotation, max attempts, now, expected)
    (
        "a_fault_waits_for_a_pod_that_has_not_failed",
        OutcomeKind.UNREACHABLE,
        None,
        1,
        {"a"},
        PODS,
        0,
        NOW,
        Requeue(frozenset({"a"}), NOW + QUEUE_TIMEOUT),
    ),
    (
        "a_refusal_for_want_of_room_may_return_to_the_same_pod",
        OutcomeKind.OOM,
        None,
        1,
        set(),
        PODS,
        0,
        NOW,
        Requeue(frozenset(), NOW + QUEUE_TIMEOUT),
    ),
    (
        "the_wait_never_passes_the_request_deadline",
        OutcomeKind.TIMEOUT,
        None,
        1,
        {"a"},
        PODS,
        0,
        90.0,
        Requeue(frozenset({"a"}), DEADLINE),
    ),
    (
        "many_attempts_are_fine_while_pods_and_time_remain",
        OutcomeKind.OOM,
        None,
        40,
        {"a", "b"},
        PODS,
        0,
        NOW,
        Requeue(frozenset({"a", "b"}), NOW + QUEUE_TIMEOUT),
    ),
    (
        "every_pod_failed_gives_up_with_the_last_kinds_code",
        OutcomeKind.OOM,
        None,
        3,
        set(PODS),
        PODS,
        0,
        NOW,
        GiveUp(ErrorCode.GPU_OOM, GiveUpReason.EVERY_POD_FAILED, 3, 3),
    ),
    (
        "pods_that_left_the_pool_do_not_count",
        OutcomeKind.UNREACHABLE,
        None,
        2,
        {"a", "gone"},
        frozenset({"a"}),
        0,
        NOW,
        GiveUp(ErrorCode.SERVICE_UNAVAILABLE, GiveUpReason.EVERY_POD_FAILED, 2, 2),
    ),
    (
        "no_pod_in_rotation_waits_for_one_to_come_back",
        OutcomeKind.UNREACHABLE,
        None,
        1,
        {"a"},
        frozenset(),
        0,
        NOW,
        Requeue(frozenset({"a"}), NOW + QUEUE_TIMEOUT),
    ),
    (
        "past_the_deadline_gives_up",
        OutcomeKind.TIMEOUT,
        None,
        2,
        {"a"},
        PODS,
        0,
        DEADLINE,
        GiveUp(ErrorCode.TIMEOUT, GiveUpReason.DEADLINE, 2, 1),
    ),
    (
        "a_configured_cap_on_attempts_gives_up",
        OutcomeKind.SERVER_ERROR,
        None,
        4,
        {"a"},
        PODS,
        4,
        NOW,
        GiveUp(ErrorCode.INTERNAL_ERROR, GiveUpReason.ATTEMPTS, 4, 1),
    ),
    (
        "below_the_cap_retries",
        OutcomeKind.MODEL_LOAD_FAILED,
        None,
        3,
        {"a"},
        PODS,
        4,
        NOW,
        Requeue(frozenset({"a"}), NOW + QUEUE_TIMEOUT),
    ),
    (
        "invalid_audio_is_never_retried",
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_AUDIO,
        1,
        set(),
        PODS,
        0,
        NOW,
        GiveUp(ErrorCode.INVALID_AUDIO, GiveUpReason.PERMANENT, 1, 0),
    ),
    (
        "file_too_large_is_never_retried",
        OutcomeKind.PERMANENT,
        ErrorCode.FILE_TOO_LARGE,
        1,
        set(),
        PODS,
        0,
        NOW,
        GiveUp(ErrorCode.FILE_TOO_LARGE, GiveUpReason.PERMANENT, 1, 0),
    ),
    (
        "bad_answers_end_as_internal_error",
        OutcomeKind.BAD_ANSWER,
        None,
        3,
        set(PODS),
        PODS,
        0,
        NOW,
        GiveUp(ErrorCode.INTERNAL_ERROR, GiveUpReason.EVERY_POD_FAILED, 3, 3),
    ),
    (
        "a_503_ends_as_service_unavailable",
        OutcomeKind.UNAVAILABLE,
        None,
        1,
        {"a"},
        frozenset({"a"}),
        0,
        NOW,
        GiveUp(ErrorCode.SERVICE_UNAVAILABLE, GiveUpReason.EVERY_POD_FAILED, 1, 1),
    ),
]


@pytest.mark.parametrize(
    ("kind", "code", "attempts", "failed_on", "in_rotation", "cap", "now", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide_table(
    kind: OutcomeKind,
    code: ErrorCode | None,
    attempts: int,
    failed_on: set[str],
    in_rotation: frozenset[str],
    cap: int,
    now: float,
    expected: object,
) -> None:
    decision = decide(
        Outcome.of(kind, code),
        attempts=attempts,
        failed_on=frozenset(failed_on),
        in_rotation=in_rotation,
        now=now,
        deadline=DEADLINE,
        queue_timeout_s=QUEUE_TIMEOUT,
        policy=RetryPolicy(max_attempts=cap),
    )
    assert decision == expected


@pytest.mark.parametrize("kind", [OutcomeKind.OK, OutcomeKind.CANCELLED])
def test_success_and_cancellation_have_no_retry_decision(kind: OutcomeKind) -> None:
    with pytest.raises(ValueError, match="no retry decision"):
        decide(
            Outcome.of(kind),
            attempts=1,
            failed_on=frozenset(),
            in_rotation=PODS,
            now=NOW,
            deadline=DEADLINE,
            queue_timeout_s=QUEUE_TIMEOUT,
            policy=RetryPolicy(),
        )


def test_retry_policy_rejects_a_negative_cap() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(max_attempts=-1)
