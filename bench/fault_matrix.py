"""Benchmark: success rate and p99 latency under faults, asrpool against its peers, same run.

Scenarios (each with at least one healthy pod, so the goal is 100 % for asrpool):

* ``oom_pod``: four backends, one answering the seed's Xinference OOM text to everything
  (a leaking GPU), three real workers;
* ``oom_pod_kill``: the same, and one real worker SIGKILLed 3 s into the burst;
* ``bad_answers``: a gateway login page (200 text/html) and an Envoy 502, beside two
  workers;
* ``hang``: a pod that takes the upload and never answers, beside two workers;
* ``short_kill_stop``: a 502 pod beside three workers whose memory fits one decode, one
  SIGKILLed and one SIGSTOPped 3 s in (more clients than healthy slots).

Peers, each on fresh backends of the same kind, the same burst (``--requests`` clips,
``--clients`` at a time) and the same fault times:

* ``asrpool``: ``asrpool router`` in front of every backend;
* ``seed``: the policy of the team we replace, as a client: one global semaphore of 2,
  each request on one backend (round robin over all of them, generous to the seed: it ran
  one service), an OOM answer retried on the same backend after 5, 10, 20 s, a request
  timeout (``--seed-timeout``, 60 s; the seed's own 300 s would only be slower);
* ``litellm``: LiteLLM's Router (every backend a deployment, ``num_retries=3``,
  ``allowed_fails=1``, ``cooldown_time=5``, a 30 s timeout), in its own virtualenv made
  under ~/.cache/asrpool/bench on first use (``bench/peers/litellm_client.py``);
* ``litellm-proxy``: the same settings in LiteLLM's proxy (``bench/peers/litellm_proxy.py``),
  every backend a deployment of one model, the burst sent to it over HTTP as to asrpool.

Run: .venv/bin/python bench/fault_matrix.py [--requests 40] [--clients 6]
     [--scenario NAME …] [--peer asrpool|seed|litellm|litellm-proxy …]
Prints one row per scenario and peer. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import venvs
from bench.peers.litellm_proxy import BENCH_KEY, litellm_proxy
from bench.results import Results
from tests.support.fault_backend import Mode, fault_backend
from tests.support.procs import ONE_DECODE_FITS, ServerProcess, router, workers
from tests.support.speech import SENTENCES, synthesize

SEED_RETRY_DELAYS_S = (5, 10, 20)
FAULT_AT_S = 3.0
LITELLM = venvs.PEERS["litellm"]
LITELLM_CLIENT = Path(__file__).parent / "peers" / "litellm_client.py"


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[Mode, ...]
    workers: int
    worker_args: tuple[str, ...] = ()
    kill: int = 0  # real workers SIGKILLed at FAULT_AT_S
    stop: int = 0  # … and SIGSTOPped
    router_args: tuple[str, ...] = ()


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("oom_pod", (Mode.OOM_XINFERENCE,), 3),
        Scenario("oom_pod_kill", (Mode.OOM_XINFERENCE,), 3, kill=1),
        Scenario("bad_answers", (Mode.OK_HTML, Mode.ERROR_502_TEXT), 2),
        Scenario("hang", (Mode.HANG,), 2),
        Scenario(
            "short_kill_stop",
            (Mode.ERROR_502_TEXT,),
            3,
            tuple(ONE_DECODE_FITS),
            kill=1,
            stop=1,
        ),
    )
}


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def success(self) -> float:
        total = len(self.latencies) + len(self.errors)
        return 100.0 * len(self.latencies) / total if total else math.nan

    def p(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@contextlib.contextmanager
def backends(
    tmp: Path, scenario: Scenario, queue_inside: bool = False
) -> Iterator[tuple[list[str], list[ServerProcess]]]:
    """The scenario's backends. ``queue_inside``: for the peers, workers that queue what
    they cannot run at once, as a plain model server does (ours refuse past their slots,
    which only a router that tries elsewhere and waits in its own queue can use)."""
    extra = ("--slots", "64") if queue_inside else ()
    with contextlib.ExitStack() as stack:
        bad = [
            stack.enter_context(fault_backend(tmp, mode, name=f"{scenario.name}-{i}-{mode}"))
            for i, mode in enumerate(scenario.faults)
        ]
        pods = stack.enter_context(workers(tmp, scenario.workers, *scenario.worker_args, *extra))
        yield [b.url for b in bad] + [p.url for p in pods], pods


def inject_faults(scenario: Scenario, pods: list[ServerProcess]) -> Callable[[], None]:
    """Start the scenario's kills and stops at FAULT_AT_S; returns a function to undo stops."""

    def later() -> None:
        time.sleep(FAULT_AT_S)
        for p in pods[: scenario.kill]:
            p.signal(signal.SIGKILL)
        for p in pods[scenario.kill : scenario.kill + scenario.stop]:
            p.signal(signal.SIGSTOP)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread.join


async def burst(
    send: Callable[[httpx.AsyncClient, int], object], n: int, clients: int, timeout_s: float = 300
) -> Result:
    result = Result()
    gate = asyncio.Semaphore(clients)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with gate:
            started = time.monotonic()
            try:
                error = await send(client, i)  # type: ignore[misc]
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            if error is None:
                result.latencies.append(time.monotonic() - started)
            else:
                result.errors.append(str(error))

    async with httpx.AsyncClient(timeout=timeout_s) as client:
        started = time.monotonic()
        await asyncio.gather(*(one(client, i) for i in range(n)))
        result.wall_s = time.monotonic() - started
    return result


async def post(client: httpx.AsyncClient, url: str, audio: bytes) -> httpx.Response:
    return await client.post(f"{url}/v1/audio/transcriptions", files={"file": ("a.wav", audio)})


def run_asrpool(
    tmp: Path, scenario: Scenario, clips: list[bytes], args: argparse.Namespace
) -> Result:
    with backends(tmp, scenario) as (urls, pods), router(tmp, urls, *scenario.router_args) as r:

        async def send(client: httpx.AsyncClient, i: int) -> str | None:
            resp = await post(client, r.url, clips[i % len(clips)])
            return None if resp.status_code == 200 else f"{resp.status_code}"

        join = inject_faults(scenario, pods)
        result = asyncio.run(burst(send, args.requests, args.clients))
        join()
        return result


def run_seed(tmp: Path, scenario: Scenario, clips: list[bytes], args: argparse.Namespace) -> Result:
    with backends(tmp, scenario, queue_inside=True) as (urls, pods):
        semaphore = asyncio.Semaphore(2)
        next_url = itertools.cycle(urls)

        async def send(client: httpx.AsyncClient, i: int) -> str | None:
            async with semaphore:
                url = next(next_url)
                for delay in (*SEED_RETRY_DELAYS_S, None):
                    try:
                        resp = await post(client, url, clips[i % len(clips)])
                    except httpx.HTTPError as exc:
                        return type(exc).__name__
                    if resp.status_code == 200:
                        try:
                            resp.json()["text"]
                        except (ValueError, KeyError, TypeError):
                            return "not a transcript"
                        return None
                    oom = "out of memory" in resp.text.lower() or "gpu_oom" in resp.text
                    if not oom or delay is None:
                        return f"{resp.status_code}"
                    await asyncio.sleep(delay)
                return "gave up"

        join = inject_faults(scenario, pods)
        result = asyncio.run(burst(send, args.requests, args.clients, args.seed_timeout))
        join()
        return result


def run_litellm(
    tmp: Path, scenario: Scenario, clips: list[bytes], args: argparse.Namespace
) -> Result:
    python = LITELLM.python
    paths = []
    for i, clip in enumerate(clips):
        clip_path = tmp / f"clip-{i}.wav"
        clip_path.write_bytes(clip)
        paths.append(str(clip_path))
    with backends(tmp, scenario, queue_inside=True) as (urls, pods):
        cmd = [str(python), str(LITELLM_CLIENT), "--requests", str(args.requests)]
        cmd += ["--clients", str(args.clients)]
        for url in urls:
            cmd += ["--backend", url]
        for path in paths:
            cmd += ["--clip", path]
        join = inject_faults(scenario, pods)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
        join()
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(out["latencies"], out["errors"], out["wall_s"])


def run_litellm_proxy(
    tmp: Path, scenario: Scenario, clips: list[bytes], args: argparse.Namespace
) -> Result:
    with (
        backends(tmp, scenario, queue_inside=True) as (urls, pods),
        litellm_proxy(tmp, urls, name=f"litellm-{scenario.name}") as url,
    ):
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}

        async def send(client: httpx.AsyncClient, i: int) -> str | None:
            resp = await client.post(
                f"{url}/v1/audio/transcriptions",
                headers=headers,
                files={"file": ("a.wav", clips[i % len(clips)])},
                data={"model": "whisper-1"},
            )
            if resp.status_code != 200:
                return f"{resp.status_code}"
            try:
                resp.json()["text"]
            except (ValueError, KeyError, TypeError):
                return "not a transcript"
            return None

        join = inject_faults(scenario, pods)
        result = asyncio.run(burst(send, args.requests, args.clients))
        join()
        return result


PEERS = {
    "asrpool": run_asrpool,
    "seed": run_seed,
    "litellm": run_litellm,
    "litellm-proxy": run_litellm_proxy,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument(
        "--seed-timeout",
        type=float,
        default=60.0,
        help="the seed's request timeout (its own was 300 s: shorter keeps the run bounded "
        "and can only flatter it)",
    )
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--peer", action="append", choices=sorted(PEERS))
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    parser.add_argument(
        "--no-install-peers",
        dest="install_peers",
        action="store_false",
        help="a peer whose virtualenv is missing is reported unavailable, not installed",
    )
    args = parser.parse_args()
    scenarios = [SCENARIOS[s] for s in (args.scenario or SCENARIOS)]
    peers = args.peer or list(PEERS)
    results = Results(
        "fault_matrix",
        {"requests": args.requests, "clients": args.clients, "fault_at_s": FAULT_AT_S,
         "scenarios": [s.name for s in scenarios]},
    )  # fmt: skip
    if {"litellm", "litellm-proxy"} & set(peers):
        ok, why = venvs.ensure(LITELLM, install=args.install_peers)
        for name in ("litellm", "litellm-proxy"):
            if not ok and name in peers:
                results.peer_unavailable(name, why)
                print(f"{name} unavailable: {why}", flush=True)
                peers.remove(name)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clips = [
            synthesize(text, tmp / f"{name}.wav").read_bytes() for name, text in SENTENCES.items()
        ]
        print(f"{args.requests} requests, {args.clients} at a time, faults at {FAULT_AT_S:g} s")
        print(f"{'scenario':<16} {'peer':<13} {'success':>8} {'p50':>7} {'p99':>7} {'wall':>7}")
        for scenario in scenarios:
            for peer in peers:
                result = PEERS[peer](tmp, scenario, clips, args)
                results.add(
                    peer,
                    {"scenario": scenario.name},
                    {"success_pct": result.success, "p50_s": result.p(0.5),
                     "p99_s": result.p(0.99), "wall_s": result.wall_s,
                     "errors": len(result.errors)},
                    {"latency_s": result.latencies},
                )  # fmt: skip
                results.write(args.json)
                print(
                    f"{scenario.name:<16} {peer:<13} {result.success:7.1f}% "
                    f"{result.p(0.5):6.1f}s {result.p(0.99):6.1f}s {result.wall_s:6.1f}s"
                    + (f"  errors: {statistics.mode(result.errors)}" if result.errors else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()
