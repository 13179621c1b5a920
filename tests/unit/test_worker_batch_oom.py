"""Batched requests through the worker app: a CUDA OOM in a batch, and the memory guard.

TEST DOUBLE: CTranslate2 on CUDA cannot run on this machine (no GPU), so
``ctranslate2.models.Whisper`` is replaced by ``StubWhisper`` while the engine loads:
an encoder call of more than one window runs out of memory with CTranslate2's own text
(when the test says so), a window whose prompt says "doomed" runs out even alone, and
each window's text is its own prompt, so an answer that went to the wrong request shows.
Everything around it is the real code: faster-whisper's ``transcribe`` with the bundled
tiny.en's tokenizer, the engine, the batcher, the worker app, the memory guard, the metrics.
"""

from __future__ import annotations

import functools
import io
import tempfile
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ctranslate2
import numpy as np
import pytest
import tokenizers
from fastapi.testclient import TestClient

from asrpool_worker.app import create_app
from asrpool_worker.batching import Reason
from asrpool_worker.engine import WhisperEngine, default_model_dir, model_size_mb
from asrpool_worker.settings import WorkerSettings
from tests.support.speech import SENTENCES, synthesize

OOM = "CUDA failed with error out of memory"


class StubWhisper:
    """Stands in for ctranslate2.models.Whisper (see the module docstring)."""

    oom_over_one = False

    def __init__(self, model_path: str, **kwargs: Any) -> None:
        self.is_multilingual = False
        self.device = "cpu"
        self.device_index = [0]
        self.tokenizer = tokenizers.Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        self.sot = self.tokenizer.token_to_id("<|startoftranscript|>")
        self.encodes: list[int] = []
        self.gate = threading.Event()  # a window whose prompt says "hold" waits here
        self.holding = threading.Event()

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        rows = np.asarray(features)
        self.encodes.append(len(rows))
        if self.oom_over_one and len(rows) > 1:
            raise RuntimeError(OOM)
        return ctranslate2.StorageView.from_array(np.zeros((len(rows), 2), np.float32))

    def generate(self, encoded: Any, prompts: list[list[int]], **kwargs: Any) -> list[Any]:
        results = []
        for prompt in prompts:
            previous = prompt[1 : prompt.index(self.sot)]  # after <|startofprev|>
            text = self.tokenizer.decode(previous)
            if "hold" in text:
                self.holding.set()
                assert self.gate.wait(10), "the test never opened the gate"
            if "doomed" in text:
                raise RuntimeError(OOM)
            results.append(
                SimpleNamespace(sequences_ids=[previous], scores=[-0.1], no_speech_prob=0.01)
            )
        return results


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], StubWhisper]]:
    made: list[StubWhisper] = []

    def build(model_path: str, **kwargs: Any) -> StubWhisper:
        made.append(StubWhisper(model_path, **kwargs))
        return made[-1]

    monkeypatch.setattr(ctranslate2.models, "Whisper", build)
    yield lambda: made[-1]
    for model in made:
        model.gate.set()


def load(settings: WorkerSettings) -> WhisperEngine:
    return WhisperEngine(
        default_model_dir(), num_workers=settings.num_workers, batching=settings.batch_policy
    )


@functools.cache
def speech() -> bytes:
    """One spoken sentence: the VAD pass keeps it whole, one window (the stub reads none)."""
    with tempfile.TemporaryDirectory() as tmp:
        return synthesize(SENTENCES["office"], Path(tmp) / "office.wav").read_bytes()


def post(client: TestClient, prompt: str):  # type: ignore[no-untyped-def]
    # A plain json request: batchable (realtime partials are not: they take drafts.py).
    return client.post(
        "/v1/audio/transcriptions", files={"file": ("a.wav", speech())}, data={"prompt": prompt}
    )


def wait_for(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):  # bounded: 10 s
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def started(client: TestClient) -> WhisperEngine:
    wait_for(lambda: client.get("/readyz").status_code == 200, "the worker is ready")
    engine = client.app.state.worker.engine  # type: ignore[attr-defined]
    assert engine is not None and engine.batcher is not None
    return engine


BATCHING = WorkerSettings(num_workers=1, max_batch=8, batch_window_ms=5)


def test_an_oom_in_a_batch_decodes_each_member_alone_and_only_the_one_that_cannot_fit_fails(
    tmp_path, stub
):
    app = create_app(BATCHING, default_model_dir(), load)
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        engine = started(client)
        model = stub()
        model.oom_over_one = True
        # The one lane is busy with "hold" while four more queue, so they make one batch.
        held = pool.submit(post, client, "hold")
        assert model.holding.wait(10)
        prompts = ["first request", "second request", "doomed request", "fourth request"]
        answers = {p: pool.submit(post, client, p) for p in prompts}
        wait_for(lambda: engine.batcher is not None and engine.batcher.waiting == 4, "a queue")
        model.gate.set()

        assert held.result(timeout=30).json()["text"] == "hold"
        for text in ("first request", "second request", "fourth request"):
            ok = answers[text].result(timeout=30)
            assert ok.status_code == 200 and ok.json()["text"] == text
        doomed = answers["doomed request"].result(timeout=30)
        assert doomed.status_code == 503 and doomed.json()["error"]["code"] == "gpu_oom"
        assert "CUDA" not in doomed.text
        # warm-up, "hold", the batch of four that ran out, then each of the four alone
        assert model.encodes == [1, 1, 4, 1, 1, 1, 1]
        assert engine.batcher.batches == Counter(
            {(1, Reason.ALL_ARRIVED): 1, (4, Reason.ALL_ARRIVED): 1}
        )
        metrics = client.get("/metrics").text
        assert "asrpool_worker_oom_rejections_total 1.0" in metrics
        assert 'asrpool_worker_batch_windows_count{reason="all_arrived"} 2.0' in metrics
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"  # an OOM shared with others starts no recovery
        assert ready["memory"]["reservations"] == 0 and ready["load"]["in_flight"] == 0


def test_a_batch_holds_no_more_requests_than_the_memory_guard_admitted(tmp_path, stub):
    with wave.open(io.BytesIO(speech())) as clip:
        seconds = clip.getnframes() / clip.getframerate()
    one_request_mb = 64 + 2 * seconds  # memory_per_request_mb + 2 MB a second of audio
    settings = WorkerSettings(
        num_workers=1,
        max_batch=8,
        batch_window_ms=5,
        memory_budget_mb=model_size_mb(default_model_dir()) + 3 * one_request_mb + 1,
    )
    app = create_app(settings, default_model_dir(), load)
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        engine = started(client)
        model = stub()
        held = pool.submit(post, client, "hold")
        assert model.holding.wait(10)
        answers = [pool.submit(post, client, f"request {n}") for n in range(4)]
        # Two more fit beside "hold"; the other two are refused before they reach the engine.
        wait_for(lambda: sum(a.done() for a in answers) == 2, "two refusals")
        for refused in (a for a in answers if a.done()):
            assert refused.result().json()["error"]["code"] == "gpu_oom"
        wait_for(lambda: engine.batcher is not None and engine.batcher.waiting == 2, "two wait")
        model.gate.set()
        codes = sorted(a.result(timeout=30).status_code for a in answers)
        assert held.result(timeout=30).status_code == 200
        assert codes == [200, 200, 503, 503], codes
        assert max(size for size, _ in engine.batcher.batches) == 2
        assert client.get("/readyz").json()["memory"]["reservations"] == 0
