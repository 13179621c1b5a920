"""How many live (realtime) sessions may be open at once: in total, and per API key.

A live session holds a socket, a chunker and a few seconds of audio for as long as the
client likes, so one client (or one leaked key) could otherwise hold the router's memory
and file descriptors. ``SessionSlots.open`` admits a session or says which cap it hit;
``close`` gives the slot back. ``realtime.py`` opens after auth and closes in a
``finally``, so a session that ends in any way (disconnect, error, idle timeout) frees its
slot.

Invariants (property-tested): the total never exceeds ``max_total``, no key's count exceeds
``max_per_key``, and closing every admitted session brings all counts back to zero.

Pure: no I/O. Keys are only counted, never shown in an answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class SessionCap(StrEnum):
    """Which cap refused a session."""

    TOTAL = "total"
    PER_KEY = "per_key"


@dataclass(frozen=True)
class SessionRefused:
    cap: SessionCap
    allowed: int  # the cap's value, for the client's message


@dataclass
class SessionSlots:
    max_total: int
    max_per_key: int
    open_total: int = 0
    _per_key: Counter[str] = field(default_factory=Counter)

    def open(self, key: str | None) -> SessionRefused | None:
        """Admit a session (None) or say which cap refused it; ``key`` None: auth is off, so
        only the total applies."""
        if self.open_total >= self.max_total:
            return SessionRefused(SessionCap.TOTAL, self.max_total)
        if key is not None and self._per_key[key] >= self.max_per_key:
            return SessionRefused(SessionCap.PER_KEY, self.max_per_key)
        self.open_total += 1
        if key is not None:
            self._per_key[key] += 1
        return None

    def close(self, key: str | None) -> None:
        """Give back the slot of an admitted session (call once per admitted ``open``)."""
        if self.open_total <= 0:
            raise RuntimeError("close() without an open session")
        self.open_total -= 1
        if key is not None:
            self._per_key[key] -= 1
            if self._per_key[key] <= 0:
                del self._per_key[key]  # keys come and go; keep only those with sessions

    def open_for(self, key: str | None) -> int:
        return self.open_total if key is None else self._per_key[key]
