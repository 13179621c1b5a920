"""/v1/audio/translations: the task reaches the engine's decode, and what an English-only
model makes of it.

TEST DOUBLE: ``RecordingModel`` stands in for ``faster_whisper.WhisperModel`` inside a real
``WhisperEngine`` and keeps the arguments of every ``transcribe`` call; the worker app, the
form parsing and the engine's own argument building are the real code. With a real
English-only model (tiny.en) faster-whisper drops the task token (its tokenizer has none
for English-only models), so a translation of English speech is its transcription:
``tests/integration/test_worker.py`` checks that with the bundled model.
"""

from __future__ import annotations

import io
import time
import wave
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from asrpool_worker.app import create_app
from asrpool_worker.engine import WhisperEngine
from asrpool_worker.settings import WorkerSettings
from tests.support.stub_whisper import hello_answer


class RecordingModel:
    """faster_whisper.WhisperModel's ``transcribe``, answering "hello" and keeping its kwargs."""

    def __init__(self, multilingual: bool) -> None:
        self.model = SimpleNamespace(is_multilingual=multilingual)
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, samples: np.ndarray, **kwargs: Any) -> tuple[Any, Any]:
        if samples.any():  # the warm-up decodes silence: not a request's decode
            self.calls.append(kwargs)
        segments, info = hello_answer()
        info.language = kwargs["language"]
        return segments, info


def wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x10\x00" * 16_000)
    return buf.getvalue()


def worker(model: RecordingModel) -> TestClient:
    def load(settings: WorkerSettings) -> WhisperEngine:
        engine = object.__new__(WhisperEngine)
        engine._model = model
        engine.model_dir = "stub"
        engine.multilingual = bool(model.model.is_multilingual)
        return engine

    return TestClient(create_app(WorkerSettings(), "stub", load))


def ready(client: TestClient) -> None:
    for _ in range(200):  # bounded: 10 s
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the stub engine never became ready")


def post(client: TestClient, route: str, **fields: str) -> Any:
    return client.post(f"/v1/audio/{route}", files={"file": ("a.wav", wav())}, data=fields)


@pytest.mark.parametrize(
    ("route", "task"), [("translations", "translate"), ("transcriptions", "transcribe")]
)
def test_each_route_hands_its_task_to_the_engines_decode(route: str, task: str) -> None:
    model = RecordingModel(multilingual=False)
    with worker(model) as client:
        ready(client)
        answer = post(client, route, response_format="verbose_json")
        assert answer.status_code == 200, answer.text
        assert answer.json()["task"] == task  # the answer says which, as OpenAI's does
        assert answer.json()["text"] == "hello"
        plain = post(client, route)
        assert plain.status_code == 200 and plain.json()["text"] == "hello"
    assert [call["task"] for call in model.calls] == [task, task]
    # An English-only model is always told the audio is English.
    assert [call["language"] for call in model.calls] == ["en", "en"]


def test_an_english_only_model_refuses_to_translate_from_another_language() -> None:
    model = RecordingModel(multilingual=False)
    with worker(model) as client:
        ready(client)
        answer = post(client, "translations", language="de")
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", "language")
        assert "only understands English" in error["message"]
    assert model.calls == []  # refused before any decode


def test_a_multilingual_model_translates_from_the_language_asked() -> None:
    model = RecordingModel(multilingual=True)
    with worker(model) as client:
        ready(client)
        answer = post(client, "translations", language="de")
        assert answer.status_code == 200, answer.text
    assert [(call["task"], call["language"]) for call in model.calls] == [("translate", "de")]
