"""The scheduler: filter → score → pick, composed from plugins.

``Pool`` calls ``pick`` to place a new request or a waiting ticket and ``candidates`` to
answer "is there room for this request?", always over the pods that may take it (the hard
conditions are the pool's, ``Pool._takers``): filters are for preferences beyond those.
``default_scheduler`` is the pipeline the router runs unless configured otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from .plugins import LeastOutstandingAudioScorer, PowerOfTwoPicker
from .pods import PodState
from .request import Request
from .rng import Rng
from .scheduling import Filter, Picker, ScoredPod, Scorer


class Scheduler:
    """Runs the filters in order, weights the scorers, lets the picker choose."""

    def __init__(
        self,
        filters: Sequence[Filter],
        scorers: Sequence[tuple[Scorer, float]],
        picker: Picker,
    ) -> None:
        if any(weight < 0 for _, weight in scorers):
            raise ValueError("scorer weights must not be negative")
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        self.picker = picker

    def candidates(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        """The pods every filter keeps."""
        kept = list(pods)
        for f in self.filters:
            if not kept:
                break
            kept = f.filter(kept, request, now)
        return kept

    def score(self, pods: Sequence[PodState], request: Request, now: float) -> list[ScoredPod]:
        """Each pod with the weighted mean of the scorers' scores."""
        totals = [0.0] * len(pods)
        weight_sum = 0.0
        for scorer, weight in self.scorers:
            if weight == 0:
                continue
            weight_sum += weight
            for i, value in enumerate(scorer.score(pods, request, now)):
                # Clamp so one misbehaving plugin cannot outweigh the others.
                totals[i] += weight * min(1.0, max(0.0, value))
        if weight_sum == 0:
            return [ScoredPod(pod, 0.0) for pod in pods]
        return [ScoredPod(pod, total / weight_sum) for pod, total in zip(pods, totals, strict=True)]

    def pick(self, pods: Sequence[PodState], request: Request, now: float) -> PodState | None:
        """The pod for ``request``, or None when no pod passes the filters."""
        kept = self.candidates(pods, request, now)
        if not kept:
            return None
        return self.picker.pick(self.score(kept, request, now))


def default_scheduler(rng: Rng) -> Scheduler:
    """Least audio in flight, power of two choices (over the pods the pool offers)."""
    return Scheduler(
        filters=[],
        scorers=[(LeastOutstandingAudioScorer(), 1.0)],
        picker=PowerOfTwoPicker(rng),
    )
