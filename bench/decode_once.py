"""Benchmark: the router decoding each upload once (``--decode-uploads on``) against off.

The same 26 s of synthesized speech uploaded in five encodings (16 kHz mono WAV, 44.1 kHz
stereo WAV, FLAC, MP3 at 64 kbit/s, Opus at 24 kbit/s), ``--requests`` times each, one at
a time, through a router in each mode:

- ``router``: in front of the instant fault double (it reads the upload and answers at
  once): the router's CPU seconds per request (from /proc, steadier than the wall on a
  shared machine) and the bytes each attempt sends a pod (the double records them);
- ``pool``: in front of one real worker (tiny.en, one thread): the router's and the
  worker's CPU seconds per request and the wall time, so that where the decode moved shows.

Run: .venv/bin/python bench/decode_once.py [--requests 10] [--json out.json]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asrpool_contract.audio import decode_pcm16
from tests.support.fault_backend import fault_backend, hits
from tests.support.procs import LEAN_WORKER, ServerProcess, router, worker
from tests.support.speech import SENTENCES, synthesize

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(proc: ServerProcess) -> float:
    fields = Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def encode(
    samples: np.ndarray, path: Path, codec: str, rate: int, layout: str, **opts: Any
) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout, **opts)
        assert isinstance(stream, av.AudioStream)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16_000
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(piece):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def uploads(tmp: Path) -> dict[str, Path]:
    parts = [synthesize(text, tmp / f"{name}.wav") for name, text in SENTENCES.items()]
    wav16 = tmp / "speech-16k-mono.wav"
    subprocess.run(["sox", *map(str, parts), str(wav16)], check=True)
    samples = decode_pcm16(wav16.read_bytes())
    stereo = tmp / "speech-44k-stereo.wav"
    subprocess.run(["sox", str(wav16), "-r", "44100", "-c", "2", str(stereo)], check=True)
    return {
        "wav 16 kHz mono": wav16,
        "wav 44.1 kHz stereo": stereo,
        "flac 16 kHz": encode(samples, tmp / "speech.flac", "flac", 16_000, "mono"),
        "mp3 64 kbit/s": encode(
            samples, tmp / "speech.mp3", "libmp3lame", 22_050, "mono", bit_rate=64_000
        ),
        "opus 24 kbit/s": encode(
            samples, tmp / "speech.ogg", "libopus", 48_000, "mono", bit_rate=24_000
        ),
    }


def send(url: str, path: Path) -> float:
    start = time.perf_counter()
    answer = httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        headers={"cache-control": "no-store"},
        timeout=300,
    )
    answer.raise_for_status()
    return time.perf_counter() - start


def router_only(tmp: Path, files: dict[str, Path], n: int) -> dict[str, dict[str, dict]]:
    result: dict[str, dict[str, dict]] = {}
    with fault_backend(tmp) as pod:
        for mode in ("off", "on"):
            with router(tmp, [pod.url], "--decode-uploads", mode, name=f"r-{mode}") as r:
                for label, path in files.items():
                    send(r.url, path)  # warm
                    before = cpu_s(r)
                    for _ in range(n):
                        send(r.url, path)
                    got = hits(pod.url)["last_file"]
                    result.setdefault(label, {})[mode] = {
                        "router_cpu_ms": 1000 * (cpu_s(r) - before) / n,
                        "bytes_to_pod": got["size"],
                        "upload_bytes": path.stat().st_size,
                    }
    return result


def with_worker(tmp: Path, files: dict[str, Path], n: int) -> dict[str, dict[str, dict]]:
    result: dict[str, dict[str, dict]] = {}
    with worker(tmp, *LEAN_WORKER) as pod:
        for mode in ("off", "on"):
            with router(tmp, [pod.url], "--decode-uploads", mode, name=f"p-{mode}") as r:
                for label, path in files.items():
                    send(r.url, path)
                    r0, w0 = cpu_s(r), cpu_s(pod)
                    walls = [send(r.url, path) for _ in range(n)]
                    result.setdefault(label, {})[mode] = {
                        "router_cpu_ms": 1000 * (cpu_s(r) - r0) / n,
                        "worker_cpu_ms": 1000 * (cpu_s(pod) - w0) / n,
                        "wall_p50_s": statistics.median(walls),
                    }
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--pool-requests", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        files = uploads(tmp)
        alone = router_only(tmp, files, args.requests)
        pooled = with_worker(tmp, files, args.pool_requests)
    print(
        "| upload | bytes | to a pod, off → on | router CPU ms, off → on "
        "| router + worker CPU ms, off → on | wall p50 s, off → on |"
    )
    print("|---|---|---|---|---|---|")
    for label in files:
        a, p = alone[label], pooled[label]
        total = {m: p[m]["router_cpu_ms"] + p[m]["worker_cpu_ms"] for m in ("off", "on")}
        print(
            f"| {label} | {a['off']['upload_bytes']:,} | {a['off']['bytes_to_pod']:,} → "
            f"{a['on']['bytes_to_pod']:,} | {a['off']['router_cpu_ms']:.1f} → "
            f"{a['on']['router_cpu_ms']:.1f} | {total['off']:.0f} → {total['on']:.0f} | "
            f"{p['off']['wall_p50_s']:.2f} → {p['on']['wall_p50_s']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"router": alone, "pool": pooled}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
