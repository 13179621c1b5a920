"""What the scheduler and the wait queue know about one transcription request.

``Pool.submit`` builds a ``Request`` for every admission; a queued ticket keeps it, so a
grant made later (when a slot frees up) honours the same size and the same pods to avoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Priority(IntEnum):
    """Service class. Lower value is served first: realtime, then interactive, then batch."""

    REALTIME = 0
    INTERACTIVE = 1
    BATCH = 2


@dataclass(frozen=True)
class Request:
    """One admission: how much audio, which class, and which pods it must not go to."""

    audio_seconds: float
    priority: Priority = Priority.INTERACTIVE
    # Pods already tried by earlier attempts of the same client request (failover).
    exclude: frozenset[str] = frozenset()
