"""The retry / failover decision after a failed attempt.

The shell calls ``decide`` (or ``Pool.retry_decision``, which fills in the pool's
policy and room) after releasing the slot of an attempt that did not succeed:

* permanent errors (bad input) are never retried: ``GiveUp(code)``;
* after ``max_attempts`` attempts: ``GiveUp`` with the kind's final code
  (gpu_oom, service_unavailable, timeout, model_load_failed, internal_error);
* otherwise, if another pod has a free slot: ``RetryNow`` there at once, avoiding the
  pod that failed (an OOM on one GPU says nothing about the others);
* otherwise ``Backoff``: wait ``uniform(0, min(cap, base × 2^(attempt-1)))`` seconds
  ("full jitter", so clients that failed together do not return together), then submit
  again to any pod, the failed one included: its load may have passed, and a broken pod
  is kept out by its circuit breaker, not by this request.
"""

from __future__ import annotations

from dataclasses import dataclass

from asrpool.wire import ErrorCode

from .errors import Outcome, OutcomeKind
from .rng import Rng


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one client request is retried."""

    max_attempts: int = 4
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("backoff times must not be negative")

    def backoff_ceiling(self, attempt: int) -> float:
        """The largest wait after the ``attempt``-th failure (1-based)."""
        exponent = min(max(0, attempt - 1), 64)
        return min(self.backoff_cap_s, self.backoff_base_s * 2.0**exponent)


@dataclass(frozen=True)
class RetryNow:
    """Submit again now, avoiding ``exclude`` (the pod that just failed)."""

    exclude: str


@dataclass(frozen=True)
class Backoff:
    """Wait ``seconds``, then submit again."""

    seconds: float


@dataclass(frozen=True)
class GiveUp:
    """Answer the client with ``code``."""

    code: ErrorCode


RetryDecision = RetryNow | Backoff | GiveUp


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    pod_id: str,
    other_pod_has_room: bool,
    policy: RetryPolicy,
    rng: Rng,
    time_left_s: float | None = None,
) -> RetryDecision:
    """What to do after attempt number ``attempt`` (1-based) on ``pod_id`` ended in ``outcome``.

    ``time_left_s``, if given, is what remains of the client's own deadline: a backoff
    that would outlast it gives up at once instead.
    """
    if outcome.kind in (OutcomeKind.OK, OutcomeKind.CANCELLED):
        raise ValueError(f"no retry decision for outcome {outcome.kind.value!r}")
    code = outcome.code or Outcome.of(outcome.kind).code or ErrorCode.INTERNAL_ERROR
    if not outcome.transient or attempt >= policy.max_attempts:
        return GiveUp(code)
    if other_pod_has_room:
        return RetryNow(exclude=pod_id)
    seconds = rng.random() * policy.backoff_ceiling(attempt)
    if time_left_s is not None and seconds >= time_left_s:
        return GiveUp(code)
    return Backoff(seconds)
