"""Benchmark: cross-request batching in the worker against one-at-a-time decoding.

One real worker (bundled tiny.en) per mode, both with the same engine (``--num-workers``,
``--cpu-threads``) and room for every request (``--slots``): ``off`` decodes one request per
engine call, ``on`` adds ``--max-batch`` and ``--batch-window-ms``. N clients (1, 4, 8, 16)
each send one short clip (4-5 s of synthesized speech) at the same moment, straight to the
worker; the two modes take turns, burst by burst, in the same run, so that whatever else the
machine runs weighs on both alike. Two kinds of request: ``final`` (json, beam 5, VAD: a plain
upload or a realtime final) and ``partial`` (``asrpool_draft``: greedy, no VAD, each with its
own prompt, as a live session's partials are).

Reported per N and mode: throughput (clips/s, the median burst), p50 and p99 latency over
every request of every round, the worker's CPU seconds per clip (the median burst; on a
machine shared with other work this is steadier than the wall clock), and for ``on`` the
mean windows per engine call (from the worker's ``asrpool_worker_batch_windows`` metric).
Every answer of ``on`` is checked against ``off``'s for the same clip and options.

Run: .venv/bin/python bench/batching.py [--clients 1 4 8 16] [--rounds 3] [--kinds final partial]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import Results, quantile
from tests.support.procs import ServerProcess, free_port
from tests.support.speech import SENTENCES, synthesize

PROMPTS = [
    "",
    "Earlier we talked about the office.",
    "The session so far: books, football and the station, then the meeting notes.",
]


@dataclass
class Tally:
    walls: list[float] = field(default_factory=list)  # one per burst
    latencies: list[float] = field(default_factory=list)  # one per request
    cpu: list[float] = field(default_factory=list)  # worker CPU seconds per clip, per burst
    windows: float = 0.0
    calls: float = 0.0

    def row(self, n: int) -> str:
        throughput = n / statistics.median(self.walls)
        lat = sorted(self.latencies)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
        batch = f"{self.windows / self.calls:.1f}" if self.calls else "1 (off)"
        cpu = statistics.median(self.cpu)
        return (
            f"{throughput:6.2f} clips/s | p50 {p50:5.2f} s | p99 {p99:5.2f} s | "
            f"CPU {cpu:4.2f} s/clip | batch {batch}"
        )


@contextlib.contextmanager
def start(tmp: Path, name: str, flags: list[str]) -> Iterator[ServerProcess]:
    port = free_port()
    proc = ServerProcess(["worker", "--port", str(port), *flags], port, tmp / f"{name}.log")
    try:
        proc.wait_ready(timeout=300)
        yield proc
    finally:
        proc.stop()


def cpu_seconds(proc: ServerProcess) -> float:
    """User + system CPU time of the worker process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_metric(proc: ServerProcess) -> tuple[float, float]:
    """(windows, engine calls) batched so far."""
    text = httpx.get(f"{proc.url}/metrics", timeout=30).text
    windows = calls = 0.0
    for line in text.splitlines():
        if line.startswith("asrpool_worker_batch_windows_sum"):
            windows += float(line.rsplit(" ", 1)[1])
        elif line.startswith("asrpool_worker_batch_windows_count"):
            calls += float(line.rsplit(" ", 1)[1])
    return windows, calls


def request_fields(kind: str, index: int) -> dict[str, str]:
    if kind == "final":
        return {"response_format": "json"}
    return {"response_format": "json", "asrpool_draft": "true", "prompt": PROMPTS[index % 3]}


def burst(
    url: str, clips: list[bytes], n: int, kind: str, pool: ThreadPoolExecutor
) -> tuple[float, list[float], list[str]]:
    """N requests released together: (wall, latencies, texts)."""
    gate = threading.Barrier(n + 1)

    def one(i: int) -> tuple[float, str]:
        data = clips[i % len(clips)]
        with httpx.Client(timeout=600) as client:
            gate.wait()
            started = time.monotonic()
            resp = client.post(
                f"{url}/v1/audio/transcriptions",
                files={"file": ("clip.wav", data)},
                data=request_fields(kind, i),
            )
            resp.raise_for_status()
            return time.monotonic() - started, str(resp.json()["text"])

    futures = [pool.submit(one, i) for i in range(n)]
    gate.wait()
    started = time.monotonic()
    results = [f.result() for f in futures]
    return time.monotonic() - started, [r[0] for r in results], [r[1] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["final", "partial"])
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--batch-window-ms", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    args = parser.parse_args()
    results = Results("batching", {k: v for k, v in vars(args).items() if k != "json"})
    results.baseline = "off"
    # Stopped with SIGTERM, still stop the workers (the finally blocks of start()).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    slots = max(args.clients)
    engine = ["--num-workers", str(args.num_workers), "--cpu-threads", str(args.cpu_threads)]
    common = [*engine, "--slots", str(slots)]
    batching = ["--max-batch", str(args.max_batch), "--batch-window-ms", str(args.batch_window_ms)]
    print(
        f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
        f"engine {' '.join(engine)}; on: {' '.join(batching)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp_dir, ThreadPoolExecutor(slots) as pool:
        tmp = Path(tmp_dir)
        clips = [
            synthesize(text, tmp / f"{name}.wav").read_bytes() for name, text in SENTENCES.items()
        ]
        with start(tmp, "off", common) as off, start(tmp, "on", [*common, *batching]) as on:
            procs = {"off": off, "on": on}
            urls = {mode: proc.url for mode, proc in procs.items()}
            for kind in args.kinds:
                for url in urls.values():  # warm both (first-call costs, VAD model load)
                    burst(url, clips, 2, kind, pool)
                for n in args.clients:
                    tallies = {"off": Tally(), "on": Tally()}
                    mismatches = 0
                    for r in range(args.rounds):
                        order = ("off", "on") if r % 2 == 0 else ("on", "off")
                        texts: dict[str, list[str]] = {}
                        for mode in order:
                            before = batch_metric(on)
                            cpu_before = cpu_seconds(procs[mode])
                            wall, latencies, texts[mode] = burst(urls[mode], clips, n, kind, pool)
                            tally = tallies[mode]
                            tally.cpu.append((cpu_seconds(procs[mode]) - cpu_before) / n)
                            tally.walls.append(wall)
                            tally.latencies += latencies
                            if mode == "on":
                                after = batch_metric(on)
                                tally.windows += after[0] - before[0]
                                tally.calls += after[1] - before[1]
                        mismatches += sum(
                            a != b for a, b in zip(texts["off"], texts["on"], strict=True)
                        )
                    for mode in ("off", "on"):
                        t = tallies[mode]
                        print(f"{kind:<8} N={n:<3} {mode:<4}| {t.row(n)}", flush=True)
                        results.add(
                            mode,
                            {"kind": kind, "clients": n},
                            {"clips_per_s": n / statistics.median(t.walls),
                             "p50_s": quantile(t.latencies, 0.5),
                             "p99_s": quantile(t.latencies, 0.99),
                             "cpu_s_per_clip": statistics.median(t.cpu),
                             "windows_per_call": t.windows / t.calls if t.calls else 1.0,
                             "mismatches": mismatches},
                            {"latency_s": t.latencies},
                        )  # fmt: skip
                        results.write(args.json)
                    if mismatches:
                        print(f"  !! {mismatches} answers differ between on and off", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
