"""The retry decision after a failed attempt: wait for a pod that can succeed, or give up.

``Pool.retry`` calls ``decide`` once it has released the failed attempt's slot and
learned from it (budget, outlier ejection), with the pods that have failed this request
so far. The rules, in order:

* bad input (a permanent outcome) is never retried: ``GiveUp(PERMANENT)``;
* past a configured cap on attempts (``max_attempts``; 0, the default, sets none):
  ``GiveUp(ATTEMPTS)``;
* past the request's deadline (its queue timeout plus its request timeout, from when it
  arrived): ``GiveUp(DEADLINE)``;
* when every pod the pool offers (ready and not terminating, ejected ones included) has
  failed it: ``GiveUp(EVERY_POD_FAILED)``;
* otherwise ``Requeue``: the request goes back to the queue with its ticket, so it keeps
  its place and priority, and waits (at most a queue timeout, never past its deadline)
  for a slot on a pod that has not failed it.

No backoff, and no pod tried twice: a pod that fails in 5 ms cannot burn a request's
chances faster than a healthy pod frees a slot, because the request never goes back to
it. A refusal for want of room (an OOM while the pod's budget could still shrink) is not
a failure of the pod: the budget is cut and the request may return to that pod once it
has room (``errors.pod_verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from asrpool_contract.wire import ErrorCode

from .errors import Outcome, OutcomeKind


@dataclass(frozen=True)
class RetryPolicy:
    """How long one client request is retried."""

    # 0: no cap; the request is retried until every pod failed it or its deadline passed.
    max_attempts: int = 0

    def __post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative (0: no cap)")


class GiveUpReason(StrEnum):
    PERMANENT = "permanent"  # the user's input is bad
    ATTEMPTS = "attempts"  # the configured cap on attempts was reached
    DEADLINE = "deadline"  # queue timeout + request timeout have passed since arrival
    EVERY_POD_FAILED = "every_pod_failed"  # no pod the pool offers is left to try


@dataclass(frozen=True)
class Requeue:
    """Wait for a slot again until ``deadline``, on a pod not in ``exclude``."""

    exclude: frozenset[str]
    deadline: float


@dataclass(frozen=True)
class GiveUp:
    """Answer the client with ``code``; ``reason`` says why no retry follows."""

    code: ErrorCode
    reason: GiveUpReason = GiveUpReason.PERMANENT
    attempts: int = 1
    pods_failed: int = 0


RetryDecision = Requeue | GiveUp


def decide(
    outcome: Outcome,
    *,
    attempts: int,
    failed_on: frozenset[str],
    in_rotation: frozenset[str],
    now: float,
    deadline: float,
    queue_timeout_s: float,
    policy: RetryPolicy,
) -> RetryDecision:
    """What to do after the ``attempts``-th attempt of a request ended in ``outcome``.

    ``failed_on`` are the pods that failed this request (this attempt's pod included
    when the attempt was its fault); ``in_rotation`` the pods the pool offers now.
    """
    if outcome.kind in (OutcomeKind.OK, OutcomeKind.CANCELLED):
        raise ValueError(f"no retry decision for outcome {outcome.kind.value!r}")
    code = outcome.code or Outcome.of(outcome.kind).code or ErrorCode.INTERNAL_ERROR

    def give_up(reason: GiveUpReason) -> GiveUp:
        return GiveUp(code, reason, attempts, len(failed_on))

    if not outcome.transient:
        return give_up(GiveUpReason.PERMANENT)
    if policy.max_attempts and attempts >= policy.max_attempts:
        return give_up(GiveUpReason.ATTEMPTS)
    if now >= deadline:
        return give_up(GiveUpReason.DEADLINE)
    if in_rotation and in_rotation <= failed_on:
        return give_up(GiveUpReason.EVERY_POD_FAILED)
    return Requeue(exclude=failed_on, deadline=min(deadline, now + queue_timeout_s))
