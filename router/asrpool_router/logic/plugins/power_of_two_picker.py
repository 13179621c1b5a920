"""Picker: power of two choices. Sample two candidates at random, keep the better score.

Always taking the single best pod makes every router replica (and every burst) pile onto
the same pod between updates; two random choices keep nearly all of the benefit of
load-aware picking while spreading herds (Mitzenmacher, "The Power of Two Choices in
Randomized Load Balancing"). Ties keep the first sample, which is itself random.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pods import PodState
from ..rng import Rng, choose_index
from ..scheduling import ScoredPod


class PowerOfTwoPicker:
    def __init__(self, rng: Rng) -> None:
        self._rng = rng

    def pick(self, scored: Sequence[ScoredPod]) -> PodState:
        n = len(scored)
        if n == 1:
            return scored[0].pod
        first = choose_index(self._rng, n)
        # Draw the second from the n - 1 others so the two samples are distinct.
        second = choose_index(self._rng, n - 1)
        if second >= first:
            second += 1
        a, b = scored[first], scored[second]
        return b.pod if b.score > a.score else a.pod
