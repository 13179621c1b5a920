"""Voice activity detection by frame energy against an adaptive noise floor.

Good enough to find the pauses between utterances, which is all the chunker
needs: a frame is speech when it is louder than both an absolute floor and a
multiple of the background level measured on recent non-speech frames. The
``threshold`` (0..1, OpenAI's knob) scales both: higher ignores more noise.

Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VadPolicy:
    frame_ms: int = 30
    threshold: float = 0.5
    # RMS on the int16 scale at threshold 0.5: about -44 dBFS, below soft speech.
    absolute_floor: float = 200.0
    # Speech must stand this many times above the background at threshold 0.5.
    noise_ratio: float = 3.0
    # How fast the background estimate follows (per non-speech frame).
    noise_adapt: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if self.frame_ms <= 0:
            raise ValueError("frame_ms must be positive")


class EnergyVad:
    def __init__(self, policy: VadPolicy) -> None:
        self.policy = policy
        self.noise = 0.0
        scale = 0.25 + 1.5 * policy.threshold  # 0.25 … 1.75, 1.0 at the default 0.5
        self._floor = policy.absolute_floor * scale
        self._ratio = 1.0 + (policy.noise_ratio - 1.0) * scale

    @staticmethod
    def level(frame: np.ndarray) -> float:
        if frame.size == 0:
            return 0.0
        return float(np.sqrt(np.mean(frame.astype(np.float64) ** 2)))

    def classify(self, frame: np.ndarray) -> tuple[bool, float]:
        """(is speech, RMS level) for one frame; updates the background estimate."""
        level = self.level(frame)
        speech = level > max(self._floor, self.noise * self._ratio)
        if not speech:
            self.noise += self.policy.noise_adapt * (level - self.noise)
        return speech, level
