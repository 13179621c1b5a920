"""PCM16 audio as the realtime protocol carries it: decode, resample to 16 kHz, wrap as WAV.

Pure (numpy and the standard library's ``wave`` on an in-memory buffer).
"""

from __future__ import annotations

import base64
import binascii
import io
import wave

import numpy as np

WHISPER_RATE = 16_000
# The rates a session may declare: OpenAI's Realtime API sends 24 kHz; 16 kHz saves bandwidth.
ACCEPTED_RATES = (16_000, 24_000)


class BadAudio(ValueError):
    """The bytes are not base64 PCM16 mono."""


def decode_base64_pcm16(payload: str) -> np.ndarray:
    """int16 samples from a base64 string of little-endian PCM16 mono."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadAudio("audio is not valid base64") from exc
    if len(raw) % 2:
        raise BadAudio("PCM16 audio must have an even number of bytes")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def to_whisper_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """int16 samples at ``rate`` → int16 at 16 kHz (linear interpolation; fine for speech)."""
    if rate == WHISPER_RATE or samples.size == 0:
        return samples.astype(np.int16, copy=False)
    n_out = round(samples.size * WHISPER_RATE / rate)
    positions = np.arange(n_out) * (rate / WHISPER_RATE)
    out = np.interp(positions, np.arange(samples.size), samples.astype(np.float32))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray, rate: int = WHISPER_RATE) -> bytes:
    """A mono PCM16 WAV file holding ``samples``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def ms_to_samples(ms: float, rate: int = WHISPER_RATE) -> int:
    return round(ms * rate / 1000)


def samples_to_ms(n: int, rate: int = WHISPER_RATE) -> int:
    return round(n * 1000 / rate)
