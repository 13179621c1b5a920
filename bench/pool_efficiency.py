"""Benchmark: a SIMULATED GPU pool of 8-64 pods under mixed traffic, asrpool against nginx.

Two CPU cores cannot run 64 GPUs, so the pods are **simulated** (``bench/sim_gpu.py``: our
real worker app, its engine replaced by one that waits ``audio seconds / --speed``, one
decode at a time a pod; up to 16 pods a process). Every number of this script is labelled
simulated. What it measures is how well the pool is used (scheduling, queueing, cutting long
files), not decoding speed and not the router's own CPU cost (``router_overhead.py``).

Traffic, the same for every peer (seeded Poisson arrivals over ``--seconds``, scaled with
the pool so that the offered work is ``--load`` of its capacity):

* **short**: uploads of one synthesized sentence (3-5 s), half the offered work;
* **long**: uploads of a ``--long-seconds`` file (default 10 minutes), the other half;
* **realtime**: one live session per 8 pods streaming a ~25 s recording at real-time pace
  (its drafts and finals are extra work beside the offered load).

Peers:

* ``asrpool``: ``asrpool router --per-pod 1`` over pods that take one request at a time
  (the router holds the queue, cuts long files at pauses across free pods, serves the live
  sessions);
* ``nginx``: nginx ``least_conn`` over the same pods, each taking up to 64 requests and
  queueing them inside (as a plain model server does), ``proxy_next_upstream`` on errors and
  503s; a long file is decoded whole by one pod; nginx has no realtime transcription (the
  pods have no realtime endpoint: sessions are assembled by asrpool's router), so its
  realtime cells are empty.

Reported per pool size and peer: p50/p99 latency and success of short and long uploads,
realtime partial gaps (p95) and the lag of the last final after the audio ended, the
makespan (first arrival to the last upload's answer: the live sessions, which only asrpool
serves, last as long as their recording and are not in the offered work), and the pool's
efficiency: the offered decode work (GPU-seconds) over pods × makespan.

Run: .venv/bin/python bench/pool_efficiency.py [--pods 8 16 32 64] [--seconds 60] [--speed 10]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.long_files import long_clip
from bench.realtime_latency import recording
from bench.results import Results, quantile
from bench.router_overhead import NGINX_COMMON
from tests.support.procs import ServerProcess, free_port, router
from tests.support.realtime_client import COMPLETED, DELTA, open_session, read_wav16
from tests.support.speech import SENTENCES, synthesize

PODS_PER_PROCESS = 16
NGINX_POOL = """
  upstream pods {{ least_conn; {servers} keepalive 256; }}
  server {{
    listen 127.0.0.1:{port};
    # Uploads of long files stay in memory (nginx's workers may not write our temp dir).
    client_body_buffer_size 128m; client_max_body_size 256m;
    location / {{
      proxy_pass http://pods; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_read_timeout 900s; proxy_send_timeout 900s;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 0;
    }}
  }}
"""


@dataclass
class Arrival:
    at: float
    kind: str  # "short" | "long"
    clip: int


@dataclass
class Tally:
    short: list[float] = field(default_factory=list)
    long: list[float] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=lambda: {"short": 0, "long": 0})
    gaps: list[float] = field(default_factory=list)
    final_lag: list[float] = field(default_factory=list)
    sessions_failed: int = 0
    first_at: float = math.inf
    last_done: float = 0.0


def schedule(
    pods: int, seconds: float, speed: float, load: float, short_s: float, long_s: float, seed: int
) -> list[Arrival]:
    """Poisson arrivals whose decode work is ``load`` of the pool's capacity, half each kind."""
    rng = random.Random(seed)
    capacity = pods * seconds  # GPU-seconds in the window
    rates = {
        "short": 0.5 * load * capacity / (short_s / speed) / seconds,
        "long": 0.5 * load * capacity / (long_s / speed) / seconds,
    }
    arrivals = []
    for kind, rate in rates.items():
        t = rng.expovariate(rate)
        while t < seconds:
            arrivals.append(Arrival(t, kind, rng.randrange(1_000_000)))
            t += rng.expovariate(rate)
    return sorted(arrivals, key=lambda a: a.at)


@contextlib.contextmanager
def sim_pool(tmp: Path, n: int, speed: float, slots: int) -> Iterator[list[str]]:
    ports = [free_port() for _ in range(n)]
    with contextlib.ExitStack() as stack:
        hosts = []
        for i in range(0, n, PODS_PER_PROCESS):
            group = ports[i : i + PODS_PER_PROCESS]
            args = ["--ports", ",".join(map(str, group)), "--speed", str(speed)]
            args += ["--slots", str(slots), "--parallel", "1"]
            proc = ServerProcess(args, group[0], tmp / f"sim-{n}-{i}.log", module="bench.sim_gpu")
            stack.callback(proc.stop)
            hosts.append((proc, group))
        for proc, group in hosts:
            for port in group:
                proc.url = f"http://127.0.0.1:{port}"
                proc.wait_ready(timeout=120)
        yield [f"http://127.0.0.1:{p}" for p in ports]


@contextlib.contextmanager
def nginx_pool(tmp: Path, pods: list[str]) -> Iterator[str]:
    port = free_port()
    servers = " ".join(f"server {u.removeprefix('http://')} max_fails=0;" for u in pods)
    conf = tmp / "pool.conf"
    body = NGINX_POOL.format(servers=servers, port=port)
    conf.write_text(NGINX_COMMON.format(dir=tmp, name="pool", body=body))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def live_session(url: str, samples: np.ndarray, start_at: float, tally: Tally) -> None:
    time.sleep(max(0.0, start_at - time.monotonic()))
    try:
        session = open_session(url)
        session.stream(samples, speed=1.0)
        sent = time.monotonic()
        session.finish(timeout=300)
        session.close()
    except (OSError, TimeoutError, RuntimeError) as exc:
        print(f"  live session failed: {type(exc).__name__}: {exc}"[:200], flush=True)
        tally.sessions_failed += 1
        return
    times = [r.at for r in session.of(DELTA)]
    tally.gaps += np.diff(times).tolist() if len(times) > 1 else []
    finals = [r.at for r in session.of(COMPLETED)]
    if finals:
        tally.final_lag.append(max(finals) - sent)
    tally.last_done = max(tally.last_done, time.monotonic())


async def uploads(
    url: str, arrivals: list[Arrival], clips: dict[str, list[bytes]], t0: float
) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)

    async def one(client: httpx.AsyncClient, a: Arrival) -> None:
        await asyncio.sleep(max(0.0, t0 + a.at - time.monotonic()))
        pool = clips[a.kind]
        started = time.monotonic()
        tally.first_at = min(tally.first_at, started)
        try:
            resp = await client.post(
                f"{url}/v1/audio/transcriptions",
                files={"file": ("a.wav", pool[a.clip % len(pool)])},
                data={"response_format": "json"},
            )
            ok = resp.status_code == 200
        except httpx.HTTPError:
            ok = False
        done = time.monotonic()
        tally.last_done = max(tally.last_done, done)
        if ok:
            (tally.short if a.kind == "short" else tally.long).append(done - started)
        else:
            tally.failed[a.kind] += 1

    async with httpx.AsyncClient(timeout=900, limits=limits) as client:
        await asyncio.gather(*(one(client, a) for a in arrivals))
    return tally


def run(
    url: str,
    arrivals: list[Arrival],
    clips: dict[str, list[bytes]],
    live: np.ndarray | None,
    sessions: int,
    seconds: float,
) -> Tally:
    t0 = time.monotonic() + 1.0
    with concurrent.futures.ThreadPoolExecutor(max(1, sessions)) as pool:
        tally_live = Tally()
        futures = []
        if live is not None:
            for i in range(sessions):  # spread over the window
                start_at = t0 + seconds * i / max(1, sessions)
                futures.append(pool.submit(live_session, url, live, start_at, tally_live))
        tally = asyncio.run(uploads(url, arrivals, clips, t0))
        for f in futures:
            f.result()
    tally.gaps, tally.final_lag = tally_live.gaps, tally_live.final_lag
    tally.sessions_failed = tally_live.sessions_failed
    # The makespan is the uploads' (the offered work): the live sessions run for as long as
    # their recording, and only asrpool serves them.
    tally.first_at = min(tally.first_at, t0)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seconds", type=float, default=60, help="arrivals over this window")
    parser.add_argument("--speed", type=float, default=10, help="simulated GPU: × real time")
    parser.add_argument("--load", type=float, default=0.7, help="offered work / capacity")
    parser.add_argument("--long-seconds", type=float, default=600)
    parser.add_argument("--sessions-per-pods", type=int, default=8, help="one live session per")
    parser.add_argument("--live-sentences", type=int, default=6, help="in the live recording")
    parser.add_argument("--peer", action="append", choices=["asrpool", "nginx"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    args = parser.parse_args()
    peers = args.peer or ["asrpool", "nginx"]
    results = Results("pool_efficiency", {k: v for k, v in vars(args).items() if k != "json"})
    results.notes.append(
        f"SIMULATED GPU pods (bench/sim_gpu.py): each decodes {args.speed:g}x real time, one "
        "request at a time; nothing here ran on a GPU."
    )
    if "nginx" in peers and shutil.which("nginx") is None:
        results.peer_unavailable("nginx", "nginx is not installed (apt-get install nginx-light)")
        peers.remove("nginx")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        short = [synthesize(text, tmp / f"{name}.wav") for name, text in SENTENCES.items()]
        short_s = float(np.mean([read_wav16(p).size / 16_000 for p in short]))
        long_path = long_clip(tmp, args.long_seconds)
        long_s = read_wav16(long_path).size / 16_000
        clips = {"short": [p.read_bytes() for p in short], "long": [long_path.read_bytes()]}
        live = read_wav16(recording(tmp, args.live_sentences))
        print(
            f"SIMULATED GPU pool, {args.speed:g}x real time a pod; short clips {short_s:.1f} s, "
            f"long file {long_s / 60:.1f} min, offered load {args.load:.0%}, "
            f"{args.seconds:g} s of arrivals; live recording {live.size / 16_000:.0f} s",
            flush=True,
        )
        print(
            f"{'pods':>4} {'peer':<8} {'short p50':>9} {'p99':>7} {'long p50':>9} {'p99':>7} "
            f"{'fail':>5} {'gap p95':>8} {'lag':>6} {'makespan':>9} {'effic.':>7}"
        )
        for n in args.pods:
            arrivals = schedule(n, args.seconds, args.speed, args.load, short_s, long_s, args.seed)
            work = sum((short_s if a.kind == "short" else long_s) / args.speed for a in arrivals)
            sessions = max(1, n // args.sessions_per_pods)
            for peer in peers:
                slots = 1 if peer == "asrpool" else 64
                with contextlib.ExitStack() as stack:
                    pods = stack.enter_context(sim_pool(tmp, n, args.speed, slots))
                    if peer == "asrpool":
                        r = stack.enter_context(
                            router(tmp, pods, "--per-pod", "1", "--max-queue", "100000")
                        )
                        url = r.url
                    else:
                        url = stack.enter_context(nginx_pool(tmp, pods))
                    tally = run(
                        url,
                        arrivals,
                        clips,
                        live if peer == "asrpool" else None,
                        sessions,
                        args.seconds,
                    )
                makespan = tally.last_done - tally.first_at
                failed = sum(tally.failed.values()) + tally.sessions_failed
                total = len(arrivals) + (sessions if peer == "asrpool" else 0)
                metrics = {
                    "short_p50_s": quantile(tally.short, 0.5),
                    "short_p99_s": quantile(tally.short, 0.99),
                    "long_p50_s": quantile(tally.long, 0.5),
                    "long_p99_s": quantile(tally.long, 0.99),
                    "success_pct": 100.0 * (total - failed) / total if total else math.nan,
                    "gap_p95_s": quantile(tally.gaps, 0.95),
                    "final_lag_s": max(tally.final_lag) if tally.final_lag else math.nan,
                    "makespan_s": makespan,
                    "efficiency_pct": 100.0 * work / (n * makespan) if makespan > 0 else math.nan,
                    "requests": float(len(arrivals)),
                }
                results.add(
                    peer,
                    {"pods": n},
                    metrics,
                    {"short_latency_s": tally.short, "long_latency_s": tally.long,
                     "gap_s": tally.gaps},
                )  # fmt: skip
                results.write(args.json)
                m = metrics
                print(
                    f"{n:>4} {peer:<8} {m['short_p50_s']:8.2f}s {m['short_p99_s']:6.2f}s "
                    f"{m['long_p50_s']:8.1f}s {m['long_p99_s']:6.1f}s {failed:>5} "
                    f"{m['gap_p95_s']:7.2f}s {m['final_lag_s']:5.1f}s {makespan:8.1f}s "
                    f"{m['efficiency_pct']:6.1f}%",
                    flush=True,
                )
    results.write(args.json)


if __name__ == "__main__":
    main()
