"""Voice activity detection by frame energy against an adaptive noise floor.

Good enough to find the pauses between utterances, which is all the chunker
needs: a frame is speech when it is louder than both an absolute floor and a
multiple of the background level measured on recent non-speech frames. The
``threshold`` (0..1, OpenAI's knob) scales both: higher ignores more noise.

With ``low_cut_hz`` set (the session's ``noise_reduction``), a frame's level counts only
its energy above that frequency: mains hum, traffic rumble and air conditioning sit below
the speech band and would otherwise open utterances (or hold them open) on their own. The
spectrum is taken over the frame and the two before it (90 ms): a single 30 ms frame's
33 Hz bins cannot part a 50 Hz hum from a 100 Hz cut (measured: a hum at -12 dBFS still
read as speech), 11 Hz bins can. The audio Whisper hears is not filtered; only the VAD's
judgement changes.

Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asrpool_contract.wire import WHISPER_SAMPLE_RATE


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
    # Energy below this frequency is not counted (0: the whole band).
    low_cut_hz: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if self.frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        if not 0.0 <= self.low_cut_hz < 8_000:
            raise ValueError("low_cut_hz must be between 0 and 8000")


class EnergyVad:
    def __init__(self, policy: VadPolicy, rate: int = WHISPER_SAMPLE_RATE) -> None:
        self.policy = policy
        self.noise = 0.0
        scale = 0.25 + 1.5 * policy.threshold  # 0.25 … 1.75, 1.0 at the default 0.5
        self._floor = policy.absolute_floor * scale
        self._ratio = 1.0 + (policy.noise_ratio - 1.0) * scale
        self._rate = rate
        # Noise reduction's analysis window: the samples before the current frame.
        self._context = np.zeros(2 * round(policy.frame_ms * rate / 1000))

    def level(self, frame: np.ndarray) -> float:
        """RMS on the int16 scale (with ``low_cut_hz``: of the band above it, over the
        analysis window; each call moves that window on by ``frame``)."""
        if frame.size == 0:
            return 0.0
        x = frame.astype(np.float64)
        if self.policy.low_cut_hz <= 0:
            return float(np.sqrt(np.mean(x**2)))
        x = np.concatenate([self._context, x])
        self._context = x[-self._context.size :]
        # Parseval over a Hann-windowed frame (the window keeps a loud hum's energy in its
        # own bins instead of leaking it across the band): the mean square is the power
        # of the kept bins, each but DC and Nyquist standing for two, over N·Σw².
        window = np.hanning(x.size)
        power = np.abs(np.fft.rfft(x * window)) ** 2
        power[1 : (x.size + 1) // 2] *= 2
        freqs = np.fft.rfftfreq(x.size, 1 / self._rate)
        kept = power[freqs >= self.policy.low_cut_hz].sum()
        return float(np.sqrt(kept / (x.size * np.sum(window**2))))

    def classify(self, frame: np.ndarray) -> tuple[bool, float]:
        """(is speech, RMS level) for one frame; updates the background estimate."""
        level = self.level(frame)
        speech = level > max(self._floor, self.noise * self._ratio)
        if not speech:
            self.noise += self.policy.noise_adapt * (level - self.noise)
        return speech, level
