"""Re-encode a wav into the containers clients upload (flac, mp3, ogg/opus, webm, m4a) with PyAV."""

from __future__ import annotations

from pathlib import Path

import av

# container suffix → (PyAV format, codec, sample rate the codec takes)
CONTAINERS = {
    "flac": ("flac", "flac", 16_000),
    "mp3": ("mp3", "libmp3lame", 16_000),
    "ogg": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "m4a": ("mp4", "aac", 16_000),
}


def reencode(wav: Path, suffix: str) -> Path:
    fmt, codec, rate = CONTAINERS[suffix]
    out = wav.with_suffix(f".{suffix}")
    with av.open(str(wav)) as src:
        frames = [f for f in src.decode(audio=0)]
    with av.open(str(out), "w", format=fmt) as dst:
        stream = dst.add_stream(codec, rate=rate)
        stream.layout = "mono"  # type: ignore[attr-defined]
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)  # type: ignore[attr-defined]
        for frame in frames:
            for f in resampler.resample(frame):
                for packet in stream.encode(f):  # type: ignore[attr-defined]
                    dst.mux(packet)
        for f in resampler.resample(None):
            for packet in stream.encode(f):  # type: ignore[attr-defined]
                dst.mux(packet)
        for packet in stream.encode(None):  # type: ignore[attr-defined]
            dst.mux(packet)
    return out
