"""Memory guard: refuse work before the GPU runs out of memory, instead of crashing.

Each request reserves an estimate of the memory it needs (a fixed cost for the
decoder state plus a cost per second of audio, for the mel features and the
encoder output); the loaded model is resident. When the next reservation would
take the total past the budget, the request is refused and the worker answers
503 ``gpu_oom``; the router then tries another pod. Estimates are deliberately
simple: the operator tunes ``--memory-budget-mb`` to the card and the router's
adaptive budget learns the rest from real refusals.

Pure: called from the worker's request handlers on the event loop thread only,
so it needs no lock.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryCosts:
    """What memory the model and each request are estimated to take (MiB)."""

    model_mb: float
    per_request_mb: float = 64.0
    per_audio_second_mb: float = 2.0

    def request_mb(self, audio_seconds: float) -> float:
        return self.per_request_mb + max(audio_seconds, 0.0) * self.per_audio_second_mb


@dataclass
class MemoryGuard:
    """Reservations against a budget; ``budget_mb <= 0`` means no budget (never refuse)."""

    budget_mb: float
    costs: MemoryCosts
    _held: dict[int, float] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    @property
    def reserved_mb(self) -> float:
        return sum(self._held.values())

    @property
    def used_mb(self) -> float:
        return self.costs.model_mb + self.reserved_mb

    def reserve(self, audio_seconds: float) -> int | None:
        """A reservation id, or None when the request does not fit now."""
        need = self.costs.request_mb(audio_seconds)
        if self.budget_mb > 0 and self.used_mb + need > self.budget_mb:
            return None
        rid = next(self._ids)
        self._held[rid] = need
        return rid

    def release(self, rid: int) -> None:
        """Give a reservation back; releasing twice is harmless."""
        self._held.pop(rid, None)

    def snapshot(self) -> dict[str, float | int]:
        return {
            "budget_mb": self.budget_mb,
            "model_mb": round(self.costs.model_mb, 1),
            "reserved_mb": round(self.reserved_mb, 1),
            "reservations": len(self._held),
        }
