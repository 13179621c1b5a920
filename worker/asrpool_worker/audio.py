"""Decode an upload into 16 kHz mono float32 samples, the input Whisper expects.

PyAV (through faster-whisper's ``decode_audio``) reads wav, flac, mp3, ogg/opus,
webm and m4a. Anything it cannot read, or that holds no samples, is
``invalid_audio``: the client's fault, never retried.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from faster_whisper.audio import decode_audio

from asrpool.wire import AsrpoolError, ErrorCode

SAMPLE_RATE = 16_000
log = logging.getLogger(__name__)


def decode(data: bytes) -> np.ndarray:
    """Samples at 16 kHz mono, or ``AsrpoolError(invalid_audio)``."""
    if not data:
        raise AsrpoolError(ErrorCode.INVALID_AUDIO, "The uploaded file is empty.", param="file")
    try:
        samples = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many types (InvalidDataError, ValueError, OSError…)
        log.info("undecodable upload (%d bytes): %s", len(data), exc)
        raise AsrpoolError(ErrorCode.INVALID_AUDIO, param="file") from exc
    if samples.size == 0:
        raise AsrpoolError(
            ErrorCode.INVALID_AUDIO,
            "The file holds no audio samples (it may be truncated). Send a complete recording.",
            param="file",
        )
    return samples


def duration_seconds(samples: np.ndarray) -> float:
    return float(samples.size) / SAMPLE_RATE
