"""OOM recovery: a worker whose GPU memory is not coming back drains and reloads its engine.

A CUDA out-of-memory with other decodes in flight is over-admission: the router's
adaptive budget sends less, and nothing here changes. One with the decode *alone*
(nothing else reserved or decoding, from its start to its end) says the memory is
held by something that no request owns (a fragmented allocator, a leak in the
engine). After ``threshold`` of those in a row the worker stops taking work, lets
what is in flight finish, and drops and reloads its engine::

    SERVING ──threshold lone OOMs in a row──▶ DRAINING (refuse new work)
      ▲                                         │ in-flight decodes reach 0
      │ reload succeeded                        ▼
      └───────────────────────────────────── RELOADING (engine dropped, loading again)
                                                │ reload failed
                                                ▼
                                              FAILED (not ready: model_load_failed)

A successful decode resets the count; an OOM shared with other decodes neither
counts nor resets it; any other ending (a bug, a cancelled request) changes
nothing. ``threshold = 0`` turns recovery off. A lone OOM leaves nothing in
flight, so today DRAINING passes at once; it is a state so that the reload can
never start under a decode, whatever comes to count as lone.

Pure: the worker's request handlers call ``begin`` and ``end`` around each decode,
on the event loop thread only (so no lock), and ``reloaded`` when the reload they
started is over. It never reads a clock and starts nothing: ``end`` says when to.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum


class RecoveryState(StrEnum):
    SERVING = "serving"
    DRAINING = "draining"
    RELOADING = "reloading"
    FAILED = "failed"


class DecodeResult(StrEnum):
    """How one decode ended, as far as recovery cares."""

    OK = "ok"
    OOM = "oom"  # the engine itself ran out of memory (not the memory guard refusing)
    OTHER = "other"  # any other error, or cancelled: says nothing about memory


@dataclass(frozen=True)
class Step:
    """What the shell must do after a decode ended."""

    # Recovery started with this decode: log it, show it on /readyz and the metrics.
    started: bool = False
    # Nothing is in flight any more: drop and reload the engine now, then call ``reloaded``.
    reload: bool = False


@dataclass
class OomRecovery:
    """The recovery state of one worker and the decodes it has in flight."""

    threshold: int = 3
    state: RecoveryState = RecoveryState.SERVING
    lone_ooms: int = 0  # in a row; kept through a recovery so the shell can report it
    # ticket → whether another decode was in flight at some time during this one
    _in_flight: dict[int, bool] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError("oom recovery threshold must be 0 (off) or more")

    @property
    def admits(self) -> bool:
        """May a new decode start? Only while serving."""
        return self.state is RecoveryState.SERVING

    @property
    def recovering(self) -> bool:
        return self.state in (RecoveryState.DRAINING, RecoveryState.RELOADING)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def begin(self) -> int:
        """A ticket for a decode about to start; only while ``admits`` (the caller checks)."""
        if not self.admits:
            raise ValueError(f"begin() while {self.state}: no new decode may start")
        ticket = next(self._ids)
        shared = bool(self._in_flight)
        if shared:
            for other in self._in_flight:
                self._in_flight[other] = True
        self._in_flight[ticket] = shared
        return ticket

    def end(self, ticket: int, result: DecodeResult) -> Step:
        """The decode of ``ticket`` ended with ``result``; ending one twice is harmless."""
        if ticket not in self._in_flight:
            return Step()
        shared = self._in_flight.pop(ticket)
        started = False
        if self.state is RecoveryState.SERVING:
            started = self._count(result, shared)
        reload = self.state is RecoveryState.DRAINING and not self._in_flight
        if reload:
            self.state = RecoveryState.RELOADING
        return Step(started=started, reload=reload)

    def reloaded(self, ok: bool) -> None:
        """The reload that ``end`` asked for is over."""
        if self.state is not RecoveryState.RELOADING:
            raise ValueError(f"reloaded() while {self.state}, not reloading")
        if ok:
            self.state = RecoveryState.SERVING
            self.lone_ooms = 0
        else:
            self.state = RecoveryState.FAILED

    def snapshot(self) -> dict[str, str | int]:
        return {"state": self.state.value, "lone_ooms": self.lone_ooms, "in_flight": self.in_flight}

    def _count(self, result: DecodeResult, shared: bool) -> bool:
        """Update the count of lone OOMs; True when it reaches the threshold."""
        if result is DecodeResult.OK:
            self.lone_ooms = 0
        elif result is DecodeResult.OOM and not shared:
            self.lone_ooms += 1
            if self.threshold and self.lone_ooms >= self.threshold:
                self.state = RecoveryState.DRAINING
                return True
        return False
