"""How long a client turned away by a full queue should wait before trying again.

``Pool`` measures how long slots are held (an exponentially weighted moving average, so
it follows the audio lengths of the moment) and, when the queue is full, estimates the
time for the pool to work through what is queued now::

    retry_after = queue_depth × mean_hold_s / capacity

where ``capacity`` is the slots of the pods that take work. It is rounded up to whole
seconds (the Retry-After header is an integer), at least 1 s, and at most the queue
timeout (rounded up too): by then every ticket queued now has either been served or expired, so the
queue has room again whatever the estimate says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class HoldTime:
    """EWMA of the seconds between a slot's grant and its release."""

    mean_s: float = 5.0
    # Weight of the newest sample: about the last ten requests dominate.
    alpha: float = 0.2

    def observe(self, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            self.mean_s += self.alpha * (seconds - self.mean_s)


def retry_after_s(
    *, queue_depth: int, capacity: int, mean_hold_s: float, horizon_s: float
) -> float:
    """Whole seconds in [1, ceil(max(1, horizon_s))]; ``horizon_s`` is the queue timeout."""
    ceiling = max(1.0, horizon_s)
    if capacity <= 0:
        return float(math.ceil(ceiling))
    estimate = max(1, queue_depth) * max(0.0, mean_hold_s) / capacity
    return float(math.ceil(min(ceiling, max(1.0, estimate))))
