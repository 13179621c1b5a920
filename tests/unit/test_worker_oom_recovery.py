"""A worker whose GPU memory is not coming back goes not ready, reloads its engine, serves again.

TEST DOUBLE: CTranslate2 on CUDA cannot run on this machine (no GPU), so the model
inside a real ``WhisperEngine`` is replaced by ``StubModel`` and the loader by
``FullGpu.load``, which counts its calls. The first engine's model raises
CTranslate2's own out-of-memory text on every decode (its warm-up passes) until it
is reloaded; a reloaded one answers. Everything around them (the worker app, the
memory guard, the recovery tracker, the error rendering, the metrics) is the real code.
"""

from __future__ import annotations

import io
import threading
import time
import wave
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
from fastapi.testclient import TestClient

from asrpool_contract.wire import AsrpoolError, ErrorCode
from asrpool_worker.app import create_app
from asrpool_worker.engine import WhisperEngine
from asrpool_worker.settings import WorkerSettings
from tests.support.stub_whisper import hello_answer

LONG_CLIP_SECONDS = 2  # decoded while the test holds it, so that another request overlaps


class StubModel:
    """Stands in for faster_whisper.WhisperModel; ``full``: every real decode runs out of memory."""

    def __init__(self, full: bool, hold: threading.Event, holding: threading.Event) -> None:
        self.full = full
        self.hold = hold
        self.holding = holding
        self.unloads = 0
        self.model = SimpleNamespace(is_multilingual=False, unload_model=self._unload)

    def _unload(self) -> None:
        self.unloads += 1

    def transcribe(self, samples: np.ndarray, **kwargs):  # type: ignore[no-untyped-def]
        if samples.any():  # the warm-up decodes silence and always passes
            if samples.size >= LONG_CLIP_SECONDS * 16_000:
                self.holding.set()
                assert self.hold.wait(10), "the test never let the long decode end"
            elif self.full:
                raise RuntimeError("CUDA failed with error out of memory")
        return hello_answer()


class FullGpu:
    """The engine loader: the first engine is on a full GPU, a reload frees it (or fails)."""

    def __init__(self, *, reload_fails: bool = False) -> None:
        self.reload_fails = reload_fails
        self.loads = 0
        self.models: list[StubModel] = []
        self.reload_gate = threading.Event()  # a reload waits here, so the test sees it
        self.hold = threading.Event()  # long clips decode until this is set
        self.holding = threading.Event()

    def load(self, settings: WorkerSettings) -> WhisperEngine:
        self.loads += 1
        if self.loads > 1:
            assert self.reload_gate.wait(10), "the test never let the reload go on"
            if self.reload_fails:
                raise AsrpoolError(ErrorCode.MODEL_LOAD_FAILED, "stub: the GPU is gone")
        model = StubModel(full=self.loads == 1, hold=self.hold, holding=self.holding)
        self.models.append(model)
        engine = object.__new__(WhisperEngine)
        engine._model = model  # type: ignore[assignment]
        engine.model_dir = "stub"
        engine.multilingual = False
        return engine


def wav(seconds: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x10\x00" * 16_000 * seconds)
    return buf.getvalue()


def post(client: TestClient, seconds: int = 1):  # type: ignore[no-untyped-def]
    return client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav(seconds))})


def wait_for(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):  # bounded: 10 s
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def ready(client: TestClient) -> bool:
    return client.get("/readyz").status_code == 200


def metric(client: TestClient, line: str) -> bool:
    return line in client.get("/metrics").text.splitlines()


def test_lone_ooms_make_the_worker_drain_reload_and_serve_again(tmp_path):
    gpu = FullGpu()
    app = create_app(WorkerSettings(oom_recovery_after=3), str(tmp_path), gpu.load)
    with TestClient(app) as client:
        wait_for(lambda: ready(client), "first load")
        for _ in range(3):
            oom = post(client)
            assert oom.status_code == 503 and oom.json()["error"]["code"] == "gpu_oom"

        readyz = client.get("/readyz")
        assert readyz.status_code == 503
        assert readyz.json()["status"] == "recovering"
        assert readyz.json()["recovery"]["lone_ooms"] == 3
        assert metric(client, "asrpool_worker_recovering 1.0")
        refused = post(client)
        assert refused.status_code == 503
        assert refused.headers["x-asrpool-error-code"] == "service_unavailable"
        error = refused.json()["error"]
        assert error["code"] == "service_unavailable" and error["type"] == "server_error"
        assert "freeing its GPU memory" in error["message"] and "param" in error

        gpu.reload_gate.set()
        wait_for(lambda: ready(client), "ready again after the reload")
        assert gpu.loads == 2
        assert gpu.models[0].unloads == 1  # the old model's memory was handed back first
        assert metric(client, 'asrpool_worker_engine_reloads_total{result="ok"} 1.0')
        assert metric(client, "asrpool_worker_recovering 0.0")
        again = post(client)
        assert again.status_code == 200 and again.json()["text"] == "hello"
        assert client.get("/readyz").json()["memory"]["reservations"] == 0
        assert metric(client, "asrpool_worker_in_flight 0.0")


def test_ooms_with_another_request_in_flight_do_not_trigger_recovery(tmp_path):
    gpu = FullGpu()
    settings = WorkerSettings(oom_recovery_after=2, num_workers=2)
    app = create_app(settings, str(tmp_path), gpu.load)
    with TestClient(app) as client:
        wait_for(lambda: ready(client), "first load")
        long_answers: list[int] = []
        long = threading.Thread(
            target=lambda: long_answers.append(post(client, LONG_CLIP_SECONDS).status_code)
        )
        long.start()
        try:
            assert gpu.holding.wait(10)
            for _ in range(4):  # over-admission: the router's budget handles it, not a reload
                assert post(client).json()["error"]["code"] == "gpu_oom"
            assert ready(client)
        finally:
            gpu.hold.set()
            long.join(10)
        assert long_answers == [200]
        assert gpu.loads == 1
        assert ready(client)
        assert not metric(client, 'asrpool_worker_engine_reloads_total{result="ok"} 1.0')
        assert client.get("/readyz").json()["memory"]["reservations"] == 0


def test_oom_recovery_after_0_never_reloads(tmp_path):
    gpu = FullGpu()
    app = create_app(WorkerSettings(oom_recovery_after=0), str(tmp_path), gpu.load)
    with TestClient(app) as client:
        wait_for(lambda: ready(client), "first load")
        for _ in range(6):
            assert post(client).json()["error"]["code"] == "gpu_oom"
        assert ready(client)
        assert gpu.loads == 1
        assert metric(client, "asrpool_worker_recovering 0.0")


def test_a_failed_reload_leaves_the_worker_not_ready_with_model_load_failed(tmp_path):
    gpu = FullGpu(reload_fails=True)
    gpu.reload_gate.set()
    app = create_app(WorkerSettings(oom_recovery_after=1), str(tmp_path), gpu.load)
    with TestClient(app) as client:
        wait_for(lambda: ready(client), "first load")
        assert post(client).json()["error"]["code"] == "gpu_oom"
        wait_for(
            lambda: client.get("/readyz").json()["status"] == "model_load_failed",
            "the failed reload shows on /readyz",
        )
        assert client.get("/readyz").status_code == 503
        refused = post(client)
        assert refused.status_code == 503
        assert refused.headers["x-asrpool-error-code"] == "model_load_failed"
        assert gpu.loads == 2
        assert metric(client, 'asrpool_worker_engine_reloads_total{result="failed"} 1.0')
        assert metric(client, "asrpool_worker_recovering 0.0")
