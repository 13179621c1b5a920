"""Decode an upload into 16 kHz mono float32 samples, the input Whisper expects.

The decoding itself is shared with the router (``asrpool_contract.audio``): anything it cannot
read, or that holds no samples, is ``invalid_audio``.
"""

from __future__ import annotations

import numpy as np

from asrpool_contract.audio import SAMPLE_RATE, decode_pcm16, to_float
from asrpool_contract.audio import duration_seconds as duration_seconds

__all__ = ["SAMPLE_RATE", "decode", "duration_seconds"]


def decode(data: bytes) -> np.ndarray:
    """Samples at 16 kHz mono, or ``AsrpoolError(invalid_audio)``."""
    return to_float(decode_pcm16(data))
