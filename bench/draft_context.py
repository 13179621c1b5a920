"""Benchmark: a live partial on a short encoder context against the 30 s window.

In process, one tiny.en engine (int8, one thread). Every synthesized test sentence is cut
at 30 %, 50 %, 75 % and 100 % of its length, as a growing utterance's partials are, and each
piece is decoded both ways, alternating, ``--rounds`` times:

- ``window``: what partials cost before: faster-whisper's transcribe, greedy, no VAD, no
  timestamps, on a window padded to 30 s;
- ``short``: the worker's draft path (``asrpool_worker/drafts.py``): the audio plus 1 s of
  silence, at least 6 s, greedy, with a token budget and loops trimmed.

And each whole sentence as a live session's final (beam 5, VAD, the session's prompt), both
ways: ``window`` on the 30 s window (``--short-context drafts``), ``short`` on its own length
plus 2 s, at least 20 s (the default, ``live``).

Reported: median and p90 CPU seconds per decode (process time: steadier than the wall on a
shared machine), the ratio, and the word error rate of each against the sentence for the
whole sentences and against each other for the cut ones (drafts are superseded by finals,
which always decode on the full window).

Run: .venv/bin/python bench/draft_context.py [--rounds 3] [--json out.json]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asrpool_worker import audio
from asrpool_worker.engine import DecodeOptions, WhisperEngine, default_model_dir
from tests.support.speech import SENTENCES, synthesize, word_error_rate

CUTS = (0.3, 0.5, 0.75, 1.0)


def window_draft(engine: WhisperEngine, samples: np.ndarray) -> str:
    """The 30 s-window partial, as the worker decoded drafts before drafts.py."""
    segments, _ = engine._model.transcribe(  # the bench may reach inside: it compares paths
        samples,
        language="en",
        beam_size=1,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    return " ".join(s.text.strip() for s in segments)


def short_draft(engine: WhisperEngine, samples: np.ndarray) -> str:
    return engine.transcribe(samples, DecodeOptions(timestamps=False, draft=True)).text


PROMPT = "Earlier in this session we talked about offices, libraries and the city next spring."


def live_final(engine: WhisperEngine, samples: np.ndarray, setting: str) -> str:
    engine.short_context = setting
    return engine.transcribe(
        samples, DecodeOptions(timestamps=False, live=True, prompt=PROMPT)
    ).text


def timed(fn: Callable[..., str], *args: object) -> tuple[float, str]:
    start = time.process_time()
    text = fn(*args)
    return time.process_time() - start, text


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.9) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the numbers here too")
    args = ap.parse_args()
    engine = WhisperEngine(default_model_dir(), compute_type="int8", cpu_threads=1, num_workers=1)
    engine.warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        clips = {
            name: audio.decode(synthesize(text, Path(tmp) / f"{name}.wav").read_bytes())
            for name, text in SENTENCES.items()
        }
    cost: dict[str, list[float]] = {"window": [], "short": []}
    whole_wer: dict[str, list[float]] = {"window": [], "short": []}
    cut_disagreement: list[float] = []
    final_cost: dict[str, list[float]] = {"window": [], "short": []}
    final_wer: dict[str, list[float]] = {"window": [], "short": []}
    for _ in range(args.rounds):
        for name, samples in clips.items():
            for path, setting in (("window", "drafts"), ("short", "live")):
                spent, text = timed(live_final, engine, samples, setting)
                final_cost[path].append(spent)
                final_wer[path].append(word_error_rate(SENTENCES[name], text))
            for cut in CUTS:
                piece = samples[: int(samples.size * cut)]
                t_window, window = timed(window_draft, engine, piece)
                t_short, short = timed(short_draft, engine, piece)
                cost["window"].append(t_window)
                cost["short"].append(t_short)
                if cut == 1.0:
                    whole_wer["window"].append(word_error_rate(SENTENCES[name], window))
                    whole_wer["short"].append(word_error_rate(SENTENCES[name], short))
                else:
                    cut_disagreement.append(word_error_rate(window, short))
    result: dict[str, Any] = {
        "decodes_each": len(cost["short"]),
        "cpu_s_median": {k: statistics.median(v) for k, v in cost.items()},
        "cpu_s_p90": {k: p90(v) for k, v in cost.items()},
        "speedup_median": statistics.median(cost["window"]) / statistics.median(cost["short"]),
        "whole_sentence_wer": {k: statistics.mean(v) for k, v in whole_wer.items()},
        "cut_piece_wer_short_vs_window": statistics.mean(cut_disagreement),
        "samples_cpu_s": cost,
        "final_cpu_s_median": {k: statistics.median(v) for k, v in final_cost.items()},
        "final_speedup_median": statistics.median(final_cost["window"])
        / statistics.median(final_cost["short"]),
        "final_wer": {k: statistics.mean(v) for k, v in final_wer.items()},
    }
    print("| path | CPU s per partial, median | p90 | WER, whole sentences |")
    print("|---|---|---|---|")
    for k in ("window", "short"):
        print(
            f"| {k} | {result['cpu_s_median'][k]:.3f} | {result['cpu_s_p90'][k]:.3f} "
            f"| {result['whole_sentence_wer'][k]:.3f} |"
        )
    print(
        f"\nshort is {result['speedup_median']:.1f}x cheaper (median); on the cut pieces the "
        f"two paths' words differ by WER {result['cut_piece_wer_short_vs_window']:.3f}"
    )
    print("\n| live final | CPU s, median | WER |")
    print("|---|---|---|")
    for k in ("window", "short"):
        print(f"| {k} | {result['final_cpu_s_median'][k]:.3f} | {result['final_wer'][k]:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
