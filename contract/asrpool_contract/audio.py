"""Decode an upload into 16 kHz mono PCM16, the audio Whisper reads, for worker and router.

PyAV (FFmpeg) reads wav, flac, mp3, ogg/opus, webm and m4a; a WAV that already is 16 kHz
mono 16-bit (what realtime pieces and most tools send) is read without it, which on the
router's hot path is the difference between microseconds and milliseconds. Anything that
cannot be read, or holds no samples, is ``invalid_audio``: the client's fault, never
retried.
"""

from __future__ import annotations

import gc
import io
import itertools
import logging
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np

from .wire import WHISPER_SAMPLE_RATE, AsrpoolError, ErrorCode

SAMPLE_RATE = WHISPER_SAMPLE_RATE
log = logging.getLogger(__name__)


def decode_pcm16(data: bytes) -> np.ndarray:
    """16 kHz mono int16 samples, or ``AsrpoolError(invalid_audio)``."""
    if not data:
        raise AsrpoolError(ErrorCode.INVALID_AUDIO, "The uploaded file is empty.", param="file")
    samples = _whisper_wav(data)
    if samples is None:
        try:
            samples = _decode_with_pyav(data)
        except Exception as exc:  # PyAV raises many types (InvalidDataError, ValueError, …)
            log.info("undecodable upload (%d bytes): %s", len(data), exc)
            raise AsrpoolError(ErrorCode.INVALID_AUDIO, param="file") from exc
    if samples.size == 0:
        raise AsrpoolError(
            ErrorCode.INVALID_AUDIO,
            "The file holds no audio samples (it may be truncated). Send a complete recording.",
            param="file",
        )
    return samples


def is_whisper_wav(data: bytes) -> bool:
    """Whether ``data`` already is what ``decode_pcm16`` makes: a 16 kHz mono PCM16 WAV."""
    return _whisper_wav(data) is not None


def to_float(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1), what the engine takes."""
    return samples.astype(np.float32) / 32768.0


def wav_bytes(samples: np.ndarray) -> bytes:
    """A 16 kHz mono 16-bit WAV of int16 ``samples``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def duration_seconds(samples: np.ndarray) -> float:
    return float(samples.size) / SAMPLE_RATE


def _whisper_wav(data: bytes) -> np.ndarray | None:
    """The samples of a WAV that is already 16 kHz mono PCM16; None for anything else."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WAVE"):
        return None
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                return None
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        return None  # let FFmpeg try (it reads more variants), and judge
    return np.frombuffer(frames[: len(frames) // 2 * 2], dtype="<i2").astype(np.int16)


def _decode_with_pyav(data: bytes) -> np.ndarray:
    import av  # only here: a WAV at our rate never needs it

    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
        for frame in itertools.chain(_valid_frames(container.decode(audio=0)), [None]):
            # None flushes the resampler's tail.
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    # PyAV's resampler keeps memory until the collector runs (faster-whisper issue #390).
    del resampler
    gc.collect()
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(chunks).astype(np.int16)


def _valid_frames(frames: Iterator[Any]) -> Iterator[Any]:
    import av

    iterator = iter(frames)
    while True:
        try:
            frame = next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue  # a damaged frame mid-file: FFmpeg goes on, so do we
        frame.pts = None  # the resampler would check timestamps
        yield frame
