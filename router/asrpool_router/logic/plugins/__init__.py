"""Scheduling plugins, one strategy per file.

Scorers: ``LeastOutstandingAudioScorer``.
Pickers: ``PowerOfTwoPicker``, ``MaxScorePicker``.
No filter is needed by default: ``Pool`` hands the scheduler only the pods that may take the
request (ready, not terminating, with room, not ejected, not failed by it already).
``scheduler.default_scheduler`` wires the default pipeline from them.
"""

from .least_outstanding_audio_scorer import LeastOutstandingAudioScorer
from .max_score_picker import MaxScorePicker
from .power_of_two_picker import PowerOfTwoPicker

__all__ = ["LeastOutstandingAudioScorer", "MaxScorePicker", "PowerOfTwoPicker"]
