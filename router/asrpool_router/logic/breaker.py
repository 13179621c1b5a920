"""Per-pod circuit breaker: stop sending to a pod that keeps failing, then probe it.

States::

    CLOSED ──K consecutive failures──▶ OPEN (ejected until open_until)
      ▲                                  │ cool-down over: the next grant is the probe
      │ probe answered                   ▼
      └──────────────────────────── HALF_OPEN (one probe in flight, no other grants)
                                         │ probe failed → OPEN, cool-down × multiplier
                                         │ probe cancelled → OPEN, probe again at once

Failures are the kinds that say the pod itself is broken (by default unreachable,
timeout, model load failed). An answer that proves the pod alive (a transcript, a bad
input verdict, even an OOM) resets the count. Cool-downs grow exponentially with each
ejection in a row, capped, and reset when a probe succeeds.

Time is passed in (``now``); the breaker never reads a clock. ``Pool`` calls ``on_grant``
and ``on_result``; the not-ejected filter calls ``admits``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .errors import OutcomeKind

_POD_FAULTS = frozenset(
    {OutcomeKind.UNREACHABLE, OutcomeKind.TIMEOUT, OutcomeKind.MODEL_LOAD_FAILED}
)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """Knobs of the circuit breaker."""

    failure_threshold: int = 3
    base_cooldown_s: float = 5.0
    max_cooldown_s: float = 120.0
    multiplier: float = 2.0
    trip_on: frozenset[OutcomeKind] = _POD_FAULTS

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


@dataclass
class Breaker:
    """The breaker of one pod."""

    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0
    probe_ticket: int | None = None

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

    def on_result(self, ticket: int, kind: OutcomeKind, now: float) -> None:
        """A request on this pod ended with ``kind``."""
        if self.state is BreakerState.HALF_OPEN and ticket == self.probe_ticket:
            self._on_probe_result(kind, now)
        elif self.state is BreakerState.CLOSED:
            self._on_closed_result(kind, now)
        # Results of requests that started before an ejection change nothing: the pod
        # is already out, and only the probe decides when it comes back.

    def _on_closed_result(self, kind: OutcomeKind, now: float) -> None:
        if kind is OutcomeKind.CANCELLED:
            return
        if kind not in self.policy.trip_on:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.policy.failure_threshold:
            self._trip(now)

    def _on_probe_result(self, kind: OutcomeKind, now: float) -> None:
        self.probe_ticket = None
        if kind is OutcomeKind.CANCELLED:
            # We learned nothing; let the next request probe straight away.
            self.state = BreakerState.OPEN
            self.open_until = now
        elif kind in self.policy.trip_on:
            self._trip(now)
        else:
            self.state = BreakerState.CLOSED
            self.failures = 0
            self.trips = 0

    def _trip(self, now: float) -> None:
        self.trips += 1
        self.failures = 0
        self.state = BreakerState.OPEN
        self.open_until = now + self.policy.cooldown(self.trips)
