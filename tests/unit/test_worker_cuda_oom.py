"""A real CUDA out-of-memory from CTranslate2 becomes 503 gpu_oom, and the worker keeps serving.

TEST DOUBLE: CTranslate2 on CUDA cannot run on this machine (no GPU), so the model
inside a real ``WhisperEngine`` is replaced by a stub that raises CTranslate2's own
error text once, then answers. Everything around it (the worker app, the memory
guard, the error rendering, the metrics) is the real code.
"""

from __future__ import annotations

import io
import time
import wave
from types import SimpleNamespace

from fastapi.testclient import TestClient

from asrpool_worker.app import create_app
from asrpool_worker.engine import WhisperEngine
from asrpool_worker.settings import WorkerSettings
from tests.support.stub_whisper import hello_answer


class OomOnceModel:
    """Stands in for faster_whisper.WhisperModel on a full GPU."""

    def __init__(self) -> None:
        self.calls = 0
        self.model = SimpleNamespace(is_multilingual=False)

    def transcribe(self, samples, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 2:  # the first call is the warm-up
            raise RuntimeError("CUDA failed with error out of memory")
        return hello_answer()


def stub_engine(settings: WorkerSettings) -> WhisperEngine:
    engine = object.__new__(WhisperEngine)
    engine._model = OomOnceModel()  # type: ignore[assignment]
    engine.model_dir = "stub"
    engine.multilingual = False
    return engine


def wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x10\x00" * 16_000)
    return buf.getvalue()


def test_cuda_oom_is_answered_as_gpu_oom_and_the_worker_keeps_serving(tmp_path):
    app = create_app(WorkerSettings(), str(tmp_path), stub_engine)
    with TestClient(app) as client:
        for _ in range(200):  # bounded: 10 s
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the stub engine never became ready")
        full = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav())})
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "gpu_oom"
        assert full.headers["x-asrpool-error-code"] == "gpu_oom"
        assert "CUDA" not in full.text  # the raw engine text stays in the log
        again = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav())})
        assert again.status_code == 200 and again.json()["text"] == "hello"
        metrics = client.get("/metrics").text
        assert "asrpool_worker_oom_rejections_total 1.0" in metrics
        assert client.get("/readyz").json()["memory"]["reservations"] == 0
