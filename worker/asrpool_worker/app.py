"""The worker's HTTP surface: OpenAI audio routes, health, readiness, metrics.

``create_app(settings, load_engine)`` builds the app; the model is loaded (and
warmed up with one dummy decode) in the background at start-up, so ``/healthz``
answers at once and ``/readyz`` turns 200 only when the worker can serve.
Decisions live elsewhere: request validation in ``params``, admission in
``guard``, rendering in ``formats``; this module only moves bytes between them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from asrpool.http_errors import install_error_handlers
from asrpool.uploads import read_audio_form, too_large
from asrpool.wire import AsrpoolError, ErrorCode

from . import audio
from .engine import WhisperEngine, model_size_mb
from .formats import FORMATS
from .guard import MemoryCosts, MemoryGuard
from .metrics import WorkerMetrics
from .params import parse_request
from .settings import WorkerSettings

log = logging.getLogger(__name__)

EngineLoader = Callable[[WorkerSettings], WhisperEngine]


class WorkerState:
    """What the routes share: the engine once loaded, the guard, the metrics."""

    def __init__(self, settings: WorkerSettings, model_dir: str, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.model_dir = model_dir
        self.metrics = metrics
        self.engine: WhisperEngine | None = None
        self.load_error: str | None = None
        self.guard = MemoryGuard(
            settings.memory_budget_mb,
            MemoryCosts(
                model_mb=model_size_mb(model_dir),
                per_request_mb=settings.memory_per_request_mb,
                per_audio_second_mb=settings.memory_per_audio_second_mb,
            ),
        )
        # CTranslate2 runs num_workers decodes at once; more threads would only queue inside it.
        self.decode_slots = anyio.CapacityLimiter(max(settings.num_workers, 1))

    def require_engine(self) -> WhisperEngine:
        if self.engine is not None:
            return self.engine
        if self.load_error is not None:
            raise AsrpoolError(ErrorCode.MODEL_LOAD_FAILED)
        raise AsrpoolError(
            ErrorCode.SERVICE_UNAVAILABLE, "The model is still loading. Try again shortly."
        )


def create_app(
    settings: WorkerSettings,
    model_dir: str,
    load_engine: EngineLoader,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    state = WorkerState(settings, model_dir, WorkerMetrics(registry or CollectorRegistry()))

    async def load() -> None:
        started = time.monotonic()
        try:
            engine = await anyio.to_thread.run_sync(load_engine, settings)
            await anyio.to_thread.run_sync(engine.warm_up)
        except Exception as exc:
            state.load_error = str(exc)
            log.error("model %s failed to load: %s", model_dir, exc)
            return
        state.engine = engine
        log.info("model %s ready in %.1fs", settings.model_name, time.monotonic() - started)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(load())
        yield
        if not loading.done():
            loading.cancel()

    app = FastAPI(title="asrpool worker", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.worker = state
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body: dict[str, Any] = {"model": settings.model_name, "memory": state.guard.snapshot()}
        if state.engine is not None:
            return JSONResponse({"status": "ready", **body})
        if state.load_error is not None:
            return JSONResponse({"status": "model_load_failed", **body}, status_code=503)
        return JSONResponse({"status": "loading", **body}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "asrpool"}
            ],
        }

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        return await _handle(request, state, task="transcribe", endpoint="transcriptions")

    @app.post("/v1/audio/translations")
    async def translations(request: Request) -> Response:
        return await _handle(request, state, task="translate", endpoint="translations")

    return app


async def _handle(request: Request, state: WorkerState, *, task: str, endpoint: str) -> Response:
    code = "ok"
    try:
        return await _transcribe(request, state, task)
    except AsrpoolError as exc:
        code = exc.code.value
        if exc.code is ErrorCode.GPU_OOM:
            state.metrics.oom_rejections.inc()
        raise
    except BaseException:
        code = "internal_error"
        raise
    finally:
        state.metrics.requests.labels(endpoint, code).inc()


async def _transcribe(request: Request, state: WorkerState, task: str) -> Response:
    settings = state.settings
    engine = state.require_engine()
    form, upload = await read_audio_form(request, settings.max_upload_bytes)
    try:
        fields = {k: [str(v) for v in form.getlist(k)] for k in form if k != "file"}
        parsed = parse_request(fields, task=task, served_model=settings.model_name)
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:  # a file part that did not declare its size
            raise too_large(settings.max_upload_bytes)
    finally:
        await form.close()

    samples = await anyio.to_thread.run_sync(audio.decode, data)
    seconds = audio.duration_seconds(samples)
    reservation = state.guard.reserve(seconds)
    if reservation is None:
        log.info("memory guard refused %.1fs of audio: %s", seconds, state.guard.snapshot())
        raise AsrpoolError(ErrorCode.GPU_OOM)
    state.metrics.in_flight.inc()
    state.metrics.memory_reserved_mb.set(state.guard.reserved_mb)
    started = time.monotonic()
    try:
        # Not abandoned on cancel: the reservation must cover the decode until it really ends.
        transcript = await anyio.to_thread.run_sync(
            engine.transcribe, samples, parsed.options, limiter=state.decode_slots
        )
    finally:
        state.guard.release(reservation)
        state.metrics.in_flight.dec()
        state.metrics.memory_reserved_mb.set(state.guard.reserved_mb)
    state.metrics.decode_seconds.observe(time.monotonic() - started)
    state.metrics.audio_seconds.inc(seconds)

    fmt = FORMATS[parsed.response_format]
    rendered = fmt.render(transcript, parsed.options.word_timestamps)
    if isinstance(rendered, dict):
        return JSONResponse(rendered)
    return PlainTextResponse(rendered, media_type=fmt.media_type)
