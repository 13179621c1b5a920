"""Benchmark: asrpool's router against the setup it replaces, on the same workers, same run.

The peer ("seed") is the policy of the team we replace, reproduced as a client-side
wrapper: one global semaphore of 2 in front of the speech service, and on an
out-of-memory answer a retry of the same service after 5, 10, then 20 seconds.
It runs twice: against one worker (as the seed did, one box) and spread
round-robin over the same three workers asrpool gets (generous to the seed).

The workers are real (bundled tiny.en) with a memory budget that fits one decode
at a time, standing in for GPUs that run out of memory under a second request.
Every client sends one clip; everything is bounded in count and time.

Run: .venv/bin/python bench/router_vs_seed.py [--clients 12] [--clip PATH]
Prints success rate, wall time, p50/p95 latency and OOM answers for each, and the
ratios against asrpool measured in the same run. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import Results
from tests.support.procs import ONE_DECODE_FITS, router, workers
from tests.support.speech import SENTENCES, synthesize

SEED_RETRY_DELAYS_S = (5, 10, 20)


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    oom_answers: int = 0
    wall_s: float = 0.0

    def row(self, baseline: Result | None) -> str:
        done = len(self.latencies)
        total = done + self.failures
        p50 = statistics.median(self.latencies) if self.latencies else float("nan")
        p95 = statistics.quantiles(self.latencies, n=20)[-1] if len(self.latencies) >= 2 else p50
        ratio = ""
        if baseline is not None and baseline.wall_s:
            ratio = f"  wall x{self.wall_s / baseline.wall_s:.2f} vs asrpool"
        return (
            f"{self.name:<22} success {100 * done / total:5.1f}%  wall {self.wall_s:6.1f}s  "
            f"p50 {p50:6.1f}s  p95 {p95:6.1f}s  OOM answers {self.oom_answers:3d}{ratio}"
        )


async def post(client: httpx.AsyncClient, url: str, audio: bytes) -> httpx.Response:
    return await client.post(
        f"{url}/v1/audio/transcriptions", files={"file": ("a.wav", audio)}, timeout=300
    )


async def seed_client(urls: list[str], audio: bytes, clients: int, name: str) -> Result:
    result = Result(name)
    semaphore = asyncio.Semaphore(2)
    next_url = itertools.cycle(urls)

    async def one(client: httpx.AsyncClient) -> None:
        started = time.monotonic()
        async with semaphore:
            url = next(next_url)
            for delay in (*SEED_RETRY_DELAYS_S, None):
                resp = await post(client, url, audio)
                if resp.status_code == 200:
                    result.latencies.append(time.monotonic() - started)
                    return
                if resp.status_code == 503 and "gpu_oom" in resp.text:
                    result.oom_answers += 1
                    if delay is not None:
                        await asyncio.sleep(delay)
                        continue
                break
        result.failures += 1

    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        await asyncio.gather(*(one(client) for _ in range(clients)))
        result.wall_s = time.monotonic() - started
    return result


async def asrpool_client(url: str, audio: bytes, clients: int) -> Result:
    result = Result("asrpool router")

    async def one(client: httpx.AsyncClient) -> None:
        started = time.monotonic()
        resp = await post(client, url, audio)
        if resp.status_code == 200:
            result.latencies.append(time.monotonic() - started)
        else:
            result.failures += 1

    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        await asyncio.gather(*(one(client) for _ in range(clients)))
        result.wall_s = time.monotonic() - started
        stats = (await client.get(f"{url}/stats")).json()
        result.oom_answers = stats["oom_errors"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--clip", type=Path, help="wav to send (default: synthesized speech)")
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clip = args.clip or synthesize(" ".join(SENTENCES.values()), tmp / "speech.wav")
        audio = clip.read_bytes()
        with workers(tmp, 3, *ONE_DECODE_FITS) as pods:
            urls = [p.url for p in pods]
            with router(tmp, urls, "--per-pod", "2") as r:
                ours = asyncio.run(asrpool_client(r.url, audio, args.clients))
            seed_one = asyncio.run(seed_client(urls[:1], audio, args.clients, "seed, one worker"))
            seed_all = asyncio.run(seed_client(urls, audio, args.clients, "seed, 3 workers (rr)"))
    print(
        f"{args.clients} clients, one {len(audio) / 32000:.0f} s clip each, 3 workers "
        "that fit one decode at a time"
    )
    results = Results("router_vs_seed", {"clients": args.clients, "clip_s": len(audio) / 32000})
    for res, peer in ((ours, "asrpool"), (seed_one, "seed, one worker"), (seed_all, "seed, 3 rr")):
        print(res.row(None if res is ours else ours))
        lat = res.latencies
        results.add(
            peer,
            {"workers": 3},
            {"success_pct": 100 * len(lat) / (len(lat) + res.failures),
             "wall_s": res.wall_s,
             "p50_s": statistics.median(lat) if lat else float("nan"),
             "p95_s": statistics.quantiles(lat, n=20)[-1] if len(lat) >= 2 else float("nan"),
             "oom_answers": res.oom_answers},
            {"latency_s": lat},
        )  # fmt: skip
    results.write(args.json)


if __name__ == "__main__":
    main()
