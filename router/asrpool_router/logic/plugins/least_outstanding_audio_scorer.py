"""Scorer: prefer the pod with the least audio still to transcribe.

Counting requests alone treats a 2-second voice note and a 1-hour meeting alike; the
seconds of audio in flight are a far better proxy for when a pod frees up, because
Whisper's decode time grows with audio length. Each request also counts a fixed
``per_request_s`` (model setup, VAD, the tail of the last window), so many tiny requests
are not free.

Score: ``1 - load / max_load`` over the candidates, so the least loaded scores highest
and an idle pool scores 1 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..pods import PodState
from ..request import Request


@dataclass(frozen=True)
class LeastOutstandingAudioScorer:
    per_request_s: float = 1.0

    def score(self, pods: Sequence[PodState], request: Request, now: float) -> list[float]:
        loads = [p.in_flight_audio_seconds + self.per_request_s * p.in_flight for p in pods]
        heaviest = max(loads, default=0.0)
        if heaviest <= 0.0:
            return [1.0 for _ in pods]
        return [1.0 - load / heaviest for load in loads]
