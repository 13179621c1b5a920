"""How many seconds of audio an upload holds, guessed without decoding it.

The length weighs load (audio seconds in flight) and scales the attempt timeout. It is
needed before the upload is decoded (when it waits for the spool, and with
``--decode-uploads off``, when the router never decodes it). WAV says its length in its
header; for compressed formats we divide by a low bit rate, so the guess errs long: a
too-long guess costs a later timeout, a too-short one would cut a healthy decode off.
Once the router has decoded the upload, the exact length replaces the guess.
"""

from __future__ import annotations

import struct

# Bytes per second assumed for compressed audio: 32 kbit/s (speech-grade opus / mp3).
COMPRESSED_BYTES_PER_SECOND = 4_000


def estimate_audio_seconds(head: bytes, size: int) -> float:
    """Seconds of audio in an upload of ``size`` bytes that starts with ``head`` (64+ bytes)."""
    if size <= 0:
        return 0.0
    wav = _wav_seconds(head, size)
    if wav is not None:
        return wav
    return size / COMPRESSED_BYTES_PER_SECOND


def _wav_seconds(head: bytes, size: int) -> float | None:
    if len(head) < 36 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    byte_rate = None
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        (chunk_size,) = struct.unpack("<I", head[pos + 4 : pos + 8])
        # The byte rate is bytes 8-11 of the fmt chunk's body (found by fuzzing: a head
        # cut inside them raised struct.error, a 500).
        if chunk_id == b"fmt " and pos + 20 <= len(head):
            (byte_rate,) = struct.unpack("<I", head[pos + 16 : pos + 20])
        if chunk_id == b"data":
            if not byte_rate:
                return None
            data = min(chunk_size, max(size - pos - 8, 0))
            return data / byte_rate
        pos += 8 + chunk_size + (chunk_size & 1)
    return None


def attempt_timeout_s(audio_seconds: float, *, base_s: float, cap_s: float) -> float:
    """How long one attempt may take: a base plus real time for the audio, capped.

    Whisper on a GPU runs many times faster than real time, and tiny models on a
    CPU still run faster than it, so one second per second of audio on top of the
    base is generous for a healthy pod and still catches a hung one.
    """
    return min(cap_s, base_s + audio_seconds)
