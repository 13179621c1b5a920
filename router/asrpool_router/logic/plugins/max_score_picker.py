"""Picker: the highest score, first candidate on ties.

Deterministic: useful for tests and for a single router replica with little traffic,
where herding is no concern.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pods import PodState
from ..scheduling import ScoredPod


class MaxScorePicker:
    def pick(self, scored: Sequence[ScoredPod]) -> PodState:
        best = scored[0]
        for candidate in scored[1:]:
            if candidate.score > best.score:
                best = candidate
        return best.pod
