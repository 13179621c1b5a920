"""The interfaces of the scheduling pipeline, after the Gateway API inference
extension's endpoint picker.

    Filter:  pods → the pods that may take this request
    Scorer:  pods → one score in [0, 1] per pod (higher is better)
    Picker:  scored pods → the one that gets the request

A new strategy is one class implementing one of these, in its own file under
``plugins/``; ``scheduler.Scheduler`` composes them. Plugins read ``PodState`` and
never change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .pods import PodState
from .request import Request


class Filter(Protocol):
    """Keeps the pods that may serve ``request`` at ``now``."""

    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]: ...


class Scorer(Protocol):
    """Scores every pod in [0, 1], aligned with ``pods``.

    It sees the whole list because a good score is relative (least loaded *of these*).
    """

    def score(self, pods: Sequence[PodState], request: Request, now: float) -> list[float]: ...


@dataclass(frozen=True)
class ScoredPod:
    """A candidate with its weighted score in [0, 1]."""

    pod: PodState
    score: float


class Picker(Protocol):
    """Chooses one of the (non-empty) scored candidates."""

    def pick(self, scored: Sequence[ScoredPod]) -> PodState: ...
