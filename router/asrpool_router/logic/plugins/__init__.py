"""Scheduling plugins, one strategy per file.

Filters: ``ReadyFilter``, ``NotEjectedFilter``, ``FreeSlotFilter``, ``ExcludeTriedFilter``.
Scorers: ``LeastOutstandingAudioScorer``.
Pickers: ``PowerOfTwoPicker``, ``MaxScorePicker``.
``scheduler.default_scheduler`` wires the default pipeline from them.
"""

from .exclude_tried_filter import ExcludeTriedFilter
from .free_slot_filter import FreeSlotFilter
from .least_outstanding_audio_scorer import LeastOutstandingAudioScorer
from .max_score_picker import MaxScorePicker
from .not_ejected_filter import NotEjectedFilter
from .power_of_two_picker import PowerOfTwoPicker
from .ready_filter import ReadyFilter

__all__ = [
    "ExcludeTriedFilter",
    "FreeSlotFilter",
    "LeastOutstandingAudioScorer",
    "MaxScorePicker",
    "NotEjectedFilter",
    "PowerOfTwoPicker",
    "ReadyFilter",
]
