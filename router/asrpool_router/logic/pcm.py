"""Audio as the realtime protocol carries it: decode, resample to 16 kHz, wrap as WAV.

A session's audio is base64 PCM16 (24 kHz, OpenAI's rate, or 16 kHz) or G.711 μ-law/A-law
(8 kHz, ``g711.py``); everything leaves here as 16 kHz int16, what Whisper reads.

Pure (numpy and the standard library's ``wave`` on an in-memory buffer).
"""

from __future__ import annotations

import base64
import binascii
import io
import wave
from enum import StrEnum

import numpy as np

from asrpool_contract.wire import WHISPER_SAMPLE_RATE

from .g711 import G711_RATE, decode_alaw, decode_ulaw

WHISPER_RATE = WHISPER_SAMPLE_RATE
# The rates a session may declare: OpenAI's Realtime API sends 24 kHz; 16 kHz saves bandwidth.
ACCEPTED_RATES = (16_000, 24_000)


class AudioFormat(StrEnum):
    """The encodings a session may send (the GA names; beta: pcm16, g711_ulaw, g711_alaw)."""

    PCM16 = "audio/pcm"
    PCMU = "audio/pcmu"  # G.711 μ-law
    PCMA = "audio/pcma"  # G.711 A-law

    @property
    def fixed_rate(self) -> int | None:
        """G.711 is 8 kHz by definition; PCM16 takes the session's declared rate."""
        return None if self is AudioFormat.PCM16 else G711_RATE


class BadAudio(ValueError):
    """The bytes are not base64 audio of the session's format."""


def decode_base64_audio(payload: str, fmt: AudioFormat = AudioFormat.PCM16) -> np.ndarray:
    """int16 samples from base64 audio: little-endian PCM16 mono, or G.711 bytes."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadAudio("audio is not valid base64") from exc
    if fmt is AudioFormat.PCMU:
        return decode_ulaw(raw)
    if fmt is AudioFormat.PCMA:
        return decode_alaw(raw)
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
