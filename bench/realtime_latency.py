"""Benchmark: live transcription at 1, 4 and 8 concurrent streams, how soon and how often.

``asrpool local`` (bundled tiny.en, one thread a worker) takes a ~48 s recording streamed at
real-time pace by each of N sessions at once. Measured per session: the first text's delay
after the first spoken word ends (the first word's end from an offline decode with word
timestamps), the gaps between partials (median, p95), how many partials it got and how many
of its utterances showed a partial before their final, and the final WER against the
offline decode of the same audio. Over the sessions of a round, the fewest and the most
partials a session got say whether any was starved. ``--with-upload`` sends the recording
as a batch upload alongside each round's streams (what tests/integration/test_realtime.py
does with four sessions, asserting only order and accuracy) and reports how long it took.

The issue's goals (#14): first text within 0.25 s of the first word's end, partials at
least every 0.5 s, 8 streams on 2 cores with p95 partial latency under 1.5 s, final WER no
worse than offline.

Run: .venv/bin/python bench/realtime_latency.py [--streams 1 4 8] [--workers 2]
[--with-upload] [--repeat 2]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import Results
from tests.support.procs import LocalPool, start_local
from tests.support.realtime_client import COMPLETED, DELTA, open_session, read_wav16
from tests.support.speech import SENTENCES, synthesize, word_error_rate

# Sessions of a round start this far apart: people do not start speaking on one beat, and
# sessions in lockstep would send drafts of one length at one moment, which flatters
# batching (and bursts harm the rest). Not a multiple of the partial cadence.
STAGGER_S = 0.37

R = TypeVar("R")


def started_apart(n: int, stagger_s: float, session: Callable[[], R]) -> list[R]:
    """``n`` sessions at once, the i-th started ``i × stagger_s`` after the first."""

    def one(i: int) -> R:
        time.sleep(i * stagger_s)
        return session()

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def spoken(sentences: int) -> str:
    return " ".join(list(SENTENCES.values())[:sentences])


def recording(tmp: Path, repeat: int, sentences: int = len(SENTENCES)) -> Path:
    """The six sentences (or the first ``sentences``) ``repeat`` times: about 24 s each."""
    once = synthesize(spoken(sentences), tmp / "once.wav")
    path = tmp / "recording.wav"
    subprocess.run(["sox", *[str(once)] * repeat, str(path)], check=True)
    return path


def first_word_end(pool: LocalPool, path: Path) -> tuple[float, str]:
    answer = httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        headers=pool.auth,
        files={"file": (path.name, path.read_bytes())},
        data={"response_format": "verbose_json", "timestamp_granularities[]": "word"},
        timeout=300,
    ).json()
    return float(answer["words"][0]["end"]), str(answer["text"])


@dataclass
class StreamRun:
    first: float  # first text's delay after the first word's end, s
    gap_median: float
    gap_p95: float
    # The same, between partials of one utterance: how often the text moves while someone
    # speaks (the gaps above also span the pauses between utterances, where none can come).
    speaking_gaps: list[float]
    # A partial's latency: its arrival after the end of the audio it read was spoken.
    latencies: list[float]
    partials: int
    items: int  # utterances completed
    items_with_partials: int  # of them, those that showed a partial before their final
    finals_text: str


def one_stream(pool: LocalPool, samples: np.ndarray, word_end_s: float) -> StreamRun:
    session = open_session(pool.url, pool.api_key)
    started = session.stream(samples, speed=1.0)
    finals = session.finish(timeout=300)
    session.close()
    times = [r.at for r in session.of(DELTA)]
    latencies = [r.at - (started + r.event["audio_end_ms"] / 1000) for r in session.of(DELTA)]
    gaps = np.diff(times) if len(times) > 1 else np.array([float("nan")])
    by_item: dict[str, list[float]] = {}
    for r in session.of(DELTA):
        by_item.setdefault(r.event["item_id"], []).append(r.at)
    speaking = [float(g) for ts in by_item.values() for g in np.diff(ts)]
    completed = {r.event["item_id"] for r in session.of(COMPLETED)}
    # The server never sends an item's partial after its final (the test checks that).
    with_partials = {r.event["item_id"] for r in session.of(DELTA)} & completed
    return StreamRun(
        first=times[0] - (started + word_end_s) if times else float("nan"),
        gap_median=float(np.median(gaps)),
        gap_p95=float(np.percentile(gaps, 95)),
        speaking_gaps=speaking,
        latencies=latencies,
        partials=len(times),
        items=len(completed),
        items_with_partials=len(with_partials),
        finals_text=" ".join(finals),
    )


def upload_seconds(pool: LocalPool, path: Path) -> float:
    started = time.monotonic()
    httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        headers=pool.auth,
        files={"file": (path.name, path.read_bytes())},
        timeout=600,
    ).raise_for_status()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--max-batch",
        type=int,
        default=1,
        help="each worker's --max-batch: drafts of several sessions share engine calls",
    )
    parser.add_argument(
        "--per-pod", type=int, help="the router's --per-pod (default: asrpool local's)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="the six sentences, N times")
    parser.add_argument(
        "--with-upload", action="store_true", help="a batch upload alongside each round"
    )
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="in the recording")
    parser.add_argument("--stagger-s", type=float, default=STAGGER_S, help="between session starts")
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    parser.add_argument("--system", default="asrpool", help="the name its rows get in the report")
    args = parser.parse_args()
    results = Results(
        "realtime",
        {"streams": args.streams, "workers": args.workers, "max_batch": args.max_batch},
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        path = recording(tmp, args.repeat, args.sentences)
        samples = read_wav16(path)
        local = ["--max-batch", str(args.max_batch)]
        if args.per_pod is not None:
            local += ["--per-pod", str(args.per_pod)]
        pool = start_local(tmp, *local, workers=args.workers)
        try:
            word_end, offline = first_word_end(pool, path)
            reference = " ".join([spoken(args.sentences)] * args.repeat)
            offline_wer = word_error_rate(reference, offline)
            print(f"{samples.size / 16_000:.0f} s recording, first word ends at {word_end:.2f} s;")
            print(f"offline WER {offline_wer:.3f}; {args.workers} workers, {os.cpu_count()} cores")
            print(
                f"{'streams':>7} {'first text':>11} {'gap p50':>8} {'gap p95':>8} "
                f"{'lag p50':>8} {'lag p95':>8} {'speaking p50/p95':>16} {'partials min-max':>16} "
                f"{'items w/ partial':>16} {'WER':>6}"
                + (f" {'upload':>7}" if args.with_upload else "")
            )
            for n in args.streams:
                time.sleep(2)
                with concurrent.futures.ThreadPoolExecutor(1) as ex:
                    upload = ex.submit(upload_seconds, pool, path) if args.with_upload else None
                    runs = started_apart(
                        n, args.stagger_s, lambda: one_stream(pool, samples, word_end)
                    )
                    upload_s = upload.result() if upload is not None else None
                first = statistics.median(r.first for r in runs)
                p50 = statistics.median(r.gap_median for r in runs)
                p95 = max(r.gap_p95 for r in runs)
                lags = [lag for r in runs for lag in r.latencies]
                lag50, lag95 = (float(np.percentile(lags, q)) for q in (50, 95))
                speaking = [g for r in runs for g in r.speaking_gaps] or [float("nan")]
                sp50, sp95 = (float(np.percentile(speaking, q)) for q in (50, 95))
                fewest, most = min(r.partials for r in runs), max(r.partials for r in runs)
                shown = sum(r.items_with_partials for r in runs) / max(
                    1, sum(r.items for r in runs)
                )
                wer = statistics.mean(word_error_rate(reference, r.finals_text) for r in runs)
                line = (
                    f"{n:>7} {first:10.2f}s {p50:7.2f}s {p95:7.2f}s {lag50:7.2f}s {lag95:7.2f}s "
                    f"{f'{sp50:.2f}/{sp95:.2f}s':>16} {f'{fewest}-{most}':>16} "
                    f"{shown:15.0%} {wer:6.3f}"
                )
                if upload_s is not None:
                    line += f" {upload_s:6.1f}s"
                print(line, flush=True)
                results.add(
                    args.system,
                    {"streams": n},
                    {"first_text_s": first, "gap_p50_s": p50, "gap_p95_s": p95,
                     "lag_p50_s": lag50, "lag_p95_s": lag95, "speaking_gap_p50_s": sp50,
                     "speaking_gap_p95_s": sp95, "wer": wer,
                     "offline_wer": offline_wer},
                    {"first_text_s": [r.first for r in runs], "lag_s": lags},
                )  # fmt: skip
                results.write(args.json)
        finally:
            pool.proc.stop()


if __name__ == "__main__":
    main()
