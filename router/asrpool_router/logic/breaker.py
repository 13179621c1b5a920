"""Outlier ejection of one pod (a circuit breaker, as Envoy's outlier detection does it).

States::

    CLOSED ──K faults in a row (and the pool allows it)──▶ OPEN (ejected until open_until)
      ▲                                                      │ cool-down over: the next
      │ probe answered (ALIVE)                               │ grant is the probe
      └───────────────────────────────────────────── HALF_OPEN (one probe, no other grants)
                                                             │ probe FAULT → OPEN, longer
                                                             │ probe NEUTRAL → OPEN, probe
                                                             │   again at once

What a result says about the pod is its ``PodVerdict`` (``errors.pod_verdict``): any
way of failing counts (5xx of every kind, timeouts, resets, answers that are not what
the format promises, OOMs while the pod's budget is already at its floor); a transcript
or a verdict on bad input proves the pod alive and resets the count; a cancellation or
an OOM above the floor says nothing. Cool-downs grow with each ejection in a row
(base × multiplier^(n-1), capped) and reset when a probe succeeds.

The breaker only says when its pod *should* go (``on_result`` returns True); the pool
decides whether it may (``ejection_allowed``: never the last pods of a pool at once)
and then calls ``eject``. A pod the pool may not eject stays in rotation with its count
at the threshold, so its next fault asks again.

Time is passed in (``now``); the breaker never reads a clock. ``Pool`` calls
``on_grant``, ``on_result`` and ``eject``; the pool's hard conditions call ``admits``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .errors import PodVerdict


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """Knobs of outlier ejection."""

    failure_threshold: int = 3
    base_cooldown_s: float = 5.0
    max_cooldown_s: float = 120.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("breaker failure_threshold must be at least 1")
        if self.base_cooldown_s < 0 or self.max_cooldown_s < self.base_cooldown_s:
            raise ValueError("breaker cool-downs must satisfy 0 <= base <= max")
        if self.multiplier < 1.0:
            raise ValueError("breaker multiplier must be at least 1")

    def cooldown(self, trips: int) -> float:
        """Cool-down after the ``trips``-th ejection in a row (1-based)."""
        exponent = max(0, trips - 1)
        # Cap the exponent too: a pod dead for days must not overflow a float.
        return min(self.max_cooldown_s, self.base_cooldown_s * self.multiplier ** min(exponent, 64))


def ejection_allowed(in_rotation: int, ejected: int, max_ejection_percent: float) -> bool:
    """May one more of a pool's pods be ejected?

    ``in_rotation`` counts the pods discovery offers (ready, not terminating), ejected
    ones included; ``ejected`` those of them already out. The rule: after the ejection at
    most ``max_ejection_percent`` of them are out, rounded down but at least one once the
    pool has two pods, and never all of them: a pool of one pod never ejects it (there
    is nowhere else to send its requests), and the last pod in rotation always stays.
    """
    if in_rotation < 2:
        return False
    limit = max(1, int(in_rotation * max_ejection_percent / 100.0))
    return ejected + 1 <= min(limit, in_rotation - 1)


@dataclass
class Breaker:
    """The outlier state of one pod."""

    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0
    probe_ticket: int | None = None
    # Why the pod was last ejected (an outcome kind's value), and how often in all.
    reason: str = ""
    ejections: int = 0

    @property
    def ejected(self) -> bool:
        """True while the pod is out of normal rotation (open or probing)."""
        return self.state is not BreakerState.CLOSED

    def admits(self, now: float) -> bool:
        """May a new request be granted on this pod at ``now``?"""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return now >= self.open_until
        return False  # HALF_OPEN: the probe is in flight

    def wakes_at(self) -> float | None:
        """When an ejected pod becomes eligible for its probe, or None."""
        return self.open_until if self.state is BreakerState.OPEN else None

    def on_grant(self, ticket: int, now: float) -> None:
        """A request was granted on this pod; past the cool-down it is the probe."""
        if self.state is BreakerState.OPEN and now >= self.open_until:
            self.state = BreakerState.HALF_OPEN
            self.probe_ticket = ticket

    def on_result(self, ticket: int, verdict: PodVerdict, now: float, reason: str = "") -> bool:
        """A request on this pod ended; True when the pod should now be ejected.

        ``reason`` names the fault (an outcome kind) for ``/stats``. A failed probe
        re-ejects at once (the pod is out already, so the pool's cap is not asked again).
        """
        if self.state is BreakerState.HALF_OPEN and ticket == self.probe_ticket:
            self._on_probe_result(verdict, now, reason)
            return False
        if self.state is not BreakerState.CLOSED:
            # Results of requests that started before an ejection change nothing: the
            # pod is already out, and only the probe decides when it comes back.
            return False
        if verdict is PodVerdict.ALIVE:
            self.failures = 0
        elif verdict is PodVerdict.FAULT:
            self.failures += 1
            self.reason = reason or self.reason
        return self.failures >= self.policy.failure_threshold

    def eject(self, now: float, reason: str = "") -> None:
        """Take the pod out for its next cool-down (the pool allowed it)."""
        self.trips += 1
        self.ejections += 1
        self.failures = 0
        self.reason = reason or self.reason
        self.state = BreakerState.OPEN
        self.open_until = now + self.policy.cooldown(self.trips)

    def _on_probe_result(self, verdict: PodVerdict, now: float, reason: str) -> None:
        self.probe_ticket = None
        if verdict is PodVerdict.FAULT:
            self.eject(now, reason)
        elif verdict is PodVerdict.ALIVE:
            self.state = BreakerState.CLOSED
            self.failures = 0
            self.trips = 0
        else:
            # We learned nothing; let the next request probe straight away.
            self.state = BreakerState.OPEN
            self.open_until = now
