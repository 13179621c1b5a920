"""Cross-request batching with the real tiny.en model: answers exactly as one at a time.

In process, a batching engine and a plain one decode the same synthesized clips with the
same options: every transcript (text, tokens, log probabilities, times) must be equal, the
clips having really shared engine calls. Then two real worker processes, batching on and
off, take the same burst of mixed requests (batchable and not) over HTTP and must answer
the same bytes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from asrpool_worker import audio
from asrpool_worker.batching import BatchPolicy, Reason
from asrpool_worker.engine import DecodeOptions, WhisperEngine, default_model_dir
from tests.conftest import Clip
from tests.support.procs import ServerProcess, worker

pytestmark = pytest.mark.slow

MEETING = "Notes from the weekly meeting."
SESSION = "Earlier in this session we talked about offices, libraries and the city next spring."
# (clip, options): json/text answers, realtime partials (draft) and finals (prompted with the
# session's text), prompts of several lengths, two with one prompt (one layout), and an
# explicit temperature 0 (no fallback) beside the default schedule.
CASES = [
    ("fox", DecodeOptions(timestamps=False)),
    ("meeting", DecodeOptions(timestamps=False, prompt=MEETING)),
    ("library", DecodeOptions(timestamps=False, prompt=MEETING)),
    ("office", DecodeOptions(timestamps=False, prompt=SESSION)),
    ("station", DecodeOptions(timestamps=False, temperature=0.0)),
    ("children", DecodeOptions(timestamps=False, draft=True)),
    ("fox", DecodeOptions(timestamps=False, draft=True, prompt=SESSION)),
    ("meeting", DecodeOptions(timestamps=False, draft=True, prompt=MEETING)),
    ("library", DecodeOptions(timestamps=False, draft=True, offset_s=0.2)),
    # Live finals: read on a short encoder context (a batch per length).
    ("office", DecodeOptions(timestamps=False, live=True)),
    ("children", DecodeOptions(timestamps=False, live=True, prompt=SESSION)),
    ("station", DecodeOptions(timestamps=False, live=True, prompt=MEETING)),
]


def engine(policy: BatchPolicy | None) -> WhisperEngine:
    return WhisperEngine(
        default_model_dir(), compute_type="int8", cpu_threads=1, num_workers=1, batching=policy
    )


@pytest.fixture(scope="module")
def plain() -> WhisperEngine:
    return engine(None)


@pytest.fixture(scope="module")
def batching() -> Iterator[WhisperEngine]:
    # A long window: whether a lone request waits for it shows in why its batch was sent.
    batched = engine(BatchPolicy(max_batch=8, window_s=5.0))
    yield batched
    batched.unload()


@pytest.fixture(scope="module")
def samples(speech: dict[str, Clip]) -> dict[str, np.ndarray]:
    return {name: audio.decode(clip.path.read_bytes()) for name, clip in speech.items()}


def batches(engine: WhisperEngine) -> Counter[tuple[int, Reason]]:
    assert engine.batcher is not None
    return Counter(engine.batcher.batches)


def test_batched_transcripts_equal_one_at_a_time_decoding(plain, batching, samples):
    alone = [plain.transcribe(samples[name], opts) for name, opts in CASES]
    before = batches(batching)
    start = threading.Barrier(len(CASES))

    def decode(case: tuple[str, DecodeOptions]):  # type: ignore[no-untyped-def]
        start.wait()
        return batching.transcribe(samples[case[0]], case[1])

    with ThreadPoolExecutor(len(CASES)) as pool:
        together = list(pool.map(decode, CASES))
    for (name, opts), one, shared in zip(CASES, alone, together, strict=True):
        assert shared == one, (name, opts)
    assert all(t.text.strip() for t in together)
    formed = batches(batching) - before
    # Every case goes through the batcher: partials (drafts.py) batch with drafts of their
    # context length, finals with finals.
    assert sum(n * count for (n, _), count in formed.items()) == len(CASES)
    assert any(n > 1 for n, _ in formed), formed  # they really shared engine calls


def test_drafts_of_several_sessions_share_an_engine_call_and_read_as_alone(
    plain, batching, samples
):
    # Four sessions' partials at once, each with its own text so far: one context length
    # (the first seconds of each sentence), prompts of two lengths (one generate each).
    drafts_now = [
        (name, DecodeOptions(timestamps=False, draft=True, prompt=prompt))
        for name, prompt in (("fox", SESSION), ("meeting", MEETING), ("office", SESSION),
                             ("station", None))
    ]  # fmt: skip
    heads = {name: samples[name][: 2 * audio.SAMPLE_RATE] for name, _ in drafts_now}
    alone = [plain.transcribe(heads[name], opts) for name, opts in drafts_now]
    start = threading.Barrier(len(drafts_now))

    def decode(case: tuple[str, DecodeOptions]):  # type: ignore[no-untyped-def]
        start.wait()
        return batching.transcribe(heads[case[0]], case[1])

    seen: list[int] = []
    for _ in range(3):  # threads may start apart; one round of the three sharing suffices
        before = batches(batching)
        with ThreadPoolExecutor(len(drafts_now)) as pool:
            together = list(pool.map(decode, drafts_now))
        assert together == alone
        formed = batches(batching) - before
        assert sum(n * count for (n, _), count in formed.items()) == len(drafts_now)
        seen.extend(n for n, _ in formed)
        if max(seen) > 1:
            break
    assert max(seen) > 1, seen
    assert all(t.text.strip() for t in alone)


def test_a_lone_request_is_sent_without_waiting_for_the_window(batching, samples):
    before = batches(batching)
    batching.transcribe(samples["fox"], DecodeOptions(timestamps=False))
    assert batches(batching) - before == Counter({(1, Reason.ALL_ARRIVED): 1})


def test_requests_that_need_timestamps_or_many_windows_keep_the_one_request_path(
    plain, batching, samples
):
    longer = np.concatenate([samples["long"], np.zeros(audio.SAMPLE_RATE * 6, np.float32)])
    assert longer.size > 30 * audio.SAMPLE_RATE
    cases = [
        (samples["fox"], DecodeOptions()),  # verbose_json, srt, vtt, a stream
        (samples["fox"], DecodeOptions(timestamps=False, word_timestamps=True)),
        (samples["meeting"], DecodeOptions(timestamps=False, logprobs=True)),
        (longer, DecodeOptions(timestamps=False)),  # two windows
    ]
    before = batches(batching)
    for clip, opts in cases:
        assert batching.transcribe(clip, opts) == plain.transcribe(clip, opts)
    assert batches(batching) == before


# --- two real workers, batching on and off, one burst of mixed requests ------------------

MIXED = [
    ("fox", {"response_format": "json"}),
    ("meeting", {"response_format": "text", "prompt": MEETING}),
    ("library", {"response_format": "json", "prompt": SESSION}),
    ("office", {"response_format": "srt"}),
    ("station", {"response_format": "verbose_json", "timestamp_granularities[]": "word"}),
    ("children", {"response_format": "json", "stream": "true"}),
    ("fox", {"response_format": "json", "asrpool_draft": "true"}),
    ("meeting", {"response_format": "json", "asrpool_draft": "true", "prompt": SESSION}),
    ("library", {"response_format": "json", "include[]": "logprobs"}),
    ("long", {"response_format": "text"}),  # 26 s: still one window
    ("station", {"response_format": "json", "asrpool_draft": "true"}),
    ("office", {"response_format": "text", "prompt": MEETING}),
]


def burst(url: str, speech: dict[str, Clip]) -> list[tuple[int, str]]:
    def one(case: tuple[str, dict[str, str]]) -> tuple[int, str]:
        name, fields = case
        path: Path = speech[name].path
        resp = httpx.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": (path.name, path.read_bytes())},
            data=fields,
            timeout=300,
        )
        return resp.status_code, resp.text

    with ThreadPoolExecutor(len(MIXED)) as pool:
        return list(pool.map(one, MIXED))


def metric(proc: ServerProcess, name: str) -> float:
    text = httpx.get(f"{proc.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_burst_of_mixed_requests_is_answered_as_without_batching(tmp_path, speech):
    slots = ["--slots", str(len(MIXED))]
    with worker(tmp_path, *slots, name="plain") as off:
        expected = burst(off.url, speech)
    with worker(tmp_path, *slots, "--max-batch", "8", name="batching") as on:
        got = burst(on.url, speech)
        windows = metric(on, "asrpool_worker_batch_windows_sum")
        calls = metric(on, "asrpool_worker_batch_windows_count")
    for case, want, have in zip(MIXED, expected, got, strict=True):
        assert want[0] == 200, (case, want)
        assert have == want, case
    batchable = sum(
        1
        for _, f in MIXED
        if f["response_format"] in ("json", "text") and not {"stream", "include[]"} & f.keys()
    )
    assert windows == batchable  # every batchable request went through the batcher
    assert calls < windows, (calls, windows)  # and some of them shared an engine call
