"""Benchmark: one long file on 1..N pods, cut across the pool against decoded by one pod.

* **simulated GPU pool** (``bench/sim_gpu.py``: our worker, an engine that waits
  audio/--speed seconds; labelled simulated): a 10-minute file on 1, 2, 4 and 8 pods;
* **real workers** (bundled tiny.en on this machine's 2 cores, one thread each): a
  4-minute file on 1 and 2 workers (``--real-seconds 600 --real-pods 1 4``: issue #14's
  10-minute file on 1 and 4 pods).

The same router each time, with ``--shard-min-seconds 60`` (cut) and ``0`` (one pod).

Run: .venv/bin/python bench/long_files.py [--pods 1 2 4 8] [--speed 30] [--skip-real]
     [--sim-seconds 600] [--real-seconds 240] [--real-pods 1 2] [--json PATH]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import Results
from tests.support.procs import ServerProcess, free_port, router, workers
from tests.support.speech import SENTENCES, synthesize

SIM = Path(__file__).with_name("sim_gpu.py")


def long_clip(tmp: Path, seconds: float) -> Path:
    """The test sentences again and again, to about ``seconds``."""
    one = synthesize(" ".join(SENTENCES.values()), tmp / "once.wav")
    out = subprocess.run(["soxi", "-D", str(one)], capture_output=True, text=True, check=True)
    repeats = max(1, round(seconds / float(out.stdout)))
    path = tmp / f"long-{int(seconds)}.wav"
    subprocess.run(["sox", *[str(one)] * repeats, str(path)], check=True)
    return path


def minutes(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout) / 60


@contextlib.contextmanager
def sim_pods(tmp: Path, n: int, speed: float) -> Iterator[list[ServerProcess]]:
    with contextlib.ExitStack() as stack:
        pods = []
        for i in range(n):
            port = free_port()
            proc = ServerProcess(
                ["--port", str(port), "--speed", str(speed)],
                port,
                tmp / f"sim-{n}-{i}.log",
                module="bench.sim_gpu",
            )
            stack.callback(proc.stop)
            pods.append(proc)
        for proc in pods:
            proc.wait_ready()
        yield pods


def timed(url: str, clip: Path) -> float:
    started = time.monotonic()
    answer = httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": (clip.name, clip.read_bytes())},
        timeout=1800,
    )
    answer.raise_for_status()
    return time.monotonic() - started


def compare(tmp: Path, urls: list[str], clip: Path, label: str) -> tuple[float, float]:
    with router(tmp, urls, "--per-pod", "1", "--shard-min-seconds", "0", name="whole") as r:
        whole = timed(r.url, clip)
    with router(tmp, urls, "--per-pod", "1", name="cut") as r:
        cut = timed(r.url, clip)
    print(
        f"{label:<34} one pod {whole:7.1f}s   cut across the pool {cut:7.1f}s   "
        f"×{whole / cut:4.2f}",
        flush=True,
    )
    return whole, cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--sim-seconds", type=float, default=600, help="the simulated pool's file")
    parser.add_argument("--real-seconds", type=float, default=240, help="the real workers' file")
    parser.add_argument("--real-pods", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    args = parser.parse_args()
    results = Results("long_files", {k: v for k, v in vars(args).items() if k != "json"})
    results.baseline = "one pod"

    def record(pool: str, n: int, file_min: float, whole: float, cut: float) -> None:
        group = {"pool": pool, "pods": n, "file_min": file_min}
        results.add("one pod", group, {"wall_s": whole})
        results.add("cut across the pool", group, {"wall_s": cut, "speedup": whole / cut})
        results.write(args.json)

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sim_file = long_clip(tmp, args.sim_seconds)
        sim_min = round(minutes(sim_file), 1)
        for n in args.pods:
            with sim_pods(tmp, n, args.speed) as pods:
                label = f"simulated GPU ×{args.speed:g}, {n} pod(s), {sim_min:g} min"
                whole, cut = compare(tmp, [p.url for p in pods], sim_file, label)
                record(f"SIMULATED GPU x{args.speed:g}", n, sim_min, whole, cut)
        if not args.skip_real:
            real_file = long_clip(tmp, args.real_seconds)
            real_min = round(minutes(real_file), 1)
            for n in args.real_pods:
                with workers(tmp, n) as pods:
                    label = f"tiny.en, {n} worker(s), {real_min:g} min"
                    whole, cut = compare(tmp, [p.url for p in pods], real_file, label)
                    record("tiny.en on CPU", n, real_min, whole, cut)
    results.write(args.json)


if __name__ == "__main__":
    main()
