"""Benchmark: live transcription at 1, 4 and 8 concurrent streams, how soon and how often.

``asrpool local`` (bundled tiny.en, one thread a worker) takes a ~48 s recording streamed at
real-time pace by each of N sessions at once. Measured per session: the first text's delay
after the first spoken word ends (the first word's end from an offline decode with word
timestamps), the gaps between partials (median, p95), and the final WER against the offline
decode of the same audio. The issue's goals (#14): first text within 0.25 s of the first
word's end, partials at least every 0.5 s, 8 streams on 2 cores with p95 partial latency
under 1.5 s, final WER no worse than offline.

Run: .venv/bin/python bench/realtime_latency.py [--streams 1 4 8] [--workers 2]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import Results
from tests.support.procs import LocalPool, start_local
from tests.support.realtime_client import DELTA, open_session, read_wav16
from tests.support.speech import SENTENCES, synthesize, word_error_rate


def recording(tmp: Path, sentences: int = len(SENTENCES)) -> Path:
    """The six sentences (or the first ``sentences``) twice, with the pauses of speech: ~48 s."""
    once = synthesize(" ".join(list(SENTENCES.values())[:sentences]), tmp / "once.wav")
    path = tmp / "recording.wav"
    subprocess.run(["sox", str(once), str(once), str(path)], check=True)
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


def one_stream(pool: LocalPool, samples: np.ndarray, word_end_s: float) -> dict[str, Any]:
    session = open_session(pool.url, pool.api_key)
    started = session.stream(samples, speed=1.0)
    finals = session.finish(timeout=300)
    session.close()
    times = [r.at for r in session.of(DELTA)]
    gaps = np.diff(times) if len(times) > 1 else np.array([float("nan")])
    return {
        "first": times[0] - (started + word_end_s) if times else float("nan"),
        "gaps": gaps.tolist(),
        "gap_median": float(np.median(gaps)),
        "gap_p95": float(np.percentile(gaps, 95)),
        "partials": float(len(times)),
        "finals_text": " ".join(finals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="in the recording")
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    args = parser.parse_args()
    results = Results("realtime", {"streams": args.streams, "workers": args.workers})
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        path = recording(tmp, args.sentences)
        samples = read_wav16(path)
        pool = start_local(tmp, workers=args.workers)
        try:
            word_end, offline = first_word_end(pool, path)
            reference = " ".join([" ".join(list(SENTENCES.values())[: args.sentences])] * 2)
            offline_wer = word_error_rate(reference, offline)
            print(f"{samples.size / 16_000:.0f} s recording, first word ends at {word_end:.2f} s;")
            print(f"offline WER {offline_wer:.3f}; {args.workers} workers, 2 cores")
            print(f"{'streams':>7} {'first text':>11} {'gap p50':>8} {'gap p95':>8} {'WER':>6}")
            for n in args.streams:
                time.sleep(2)
                with concurrent.futures.ThreadPoolExecutor(n) as ex:
                    runs = list(ex.map(lambda _: one_stream(pool, samples, word_end), range(n)))
                first = statistics.median(r["first"] for r in runs)
                p50 = statistics.median(r["gap_median"] for r in runs)
                p95 = max(r["gap_p95"] for r in runs)
                wer = statistics.mean(
                    word_error_rate(reference, str(r["finals_text"])) for r in runs
                )
                print(f"{n:>7} {first:10.2f}s {p50:7.2f}s {p95:7.2f}s {wer:6.3f}", flush=True)
                results.add(
                    "asrpool",
                    {"streams": n},
                    {"first_text_s": first, "gap_p50_s": p50, "gap_p95_s": p95, "wer": wer,
                     "offline_wer": offline_wer},
                    {"first_text_s": [float(r["first"]) for r in runs],
                     "gap_s": [g for r in runs for g in r["gaps"]]},
                )  # fmt: skip
                results.write(args.json)
        finally:
            pool.proc.stop()


if __name__ == "__main__":
    main()
