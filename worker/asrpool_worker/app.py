"""The worker's HTTP surface: OpenAI audio routes, health, readiness, metrics.

``create_app(settings, load_engine)`` builds the app; the model is loaded (and
warmed up with one dummy decode) in the background at start-up, so ``/healthz``
answers at once and ``/readyz`` turns 200 only when the worker can serve.
Decisions live elsewhere: request validation in ``params``, admission in
``guard``, when to drain and reload the engine in ``recovery``, rendering in
``formats``; this module only moves bytes between them and carries out the reload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, NotRequired

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from typing_extensions import TypedDict  # pydantic reads these on Python 3.11

from asrpool_contract import formats
from asrpool_contract import transcript_stream as stream_events
from asrpool_contract.audio_answers import ModelList
from asrpool_contract.formats import FORMATS
from asrpool_contract.http_errors import install_error_handlers
from asrpool_contract.http_server import HeadAsGet, Once, OwnedStream
from asrpool_contract.openapi import audio_route, error_responses, install_openapi, text_route
from asrpool_contract.transcript import Segment, Transcript
from asrpool_contract.uploads import read_audio_form, too_large
from asrpool_contract.wire import IN_FLIGHT_HEADER, SLOTS_HEADER, AsrpoolError, ErrorCode

from . import audio
from .auth import RouterOnly
from .engine import WhisperEngine, model_size_mb
from .guard import MemoryCosts, MemoryGuard
from .metrics import WorkerMetrics
from .params import AudioRequest, parse_request
from .recovery import DecodeResult, OomRecovery
from .settings import WorkerSettings
from .slots import SlotGate

log = logging.getLogger(__name__)

EngineLoader = Callable[[WorkerSettings], WhisperEngine]

# No "out of memory" words: the router must read this as "busy, go elsewhere", not as an OOM.
RECOVERING_MESSAGE = (
    "This speech server is freeing its GPU memory and will be back shortly. "
    "Send the request again: another server can take it."
)


# What the audio routes may answer besides 200 (500 the document adds to every route).
AUDIO_ERRORS = (
    ErrorCode.INVALID_AUDIO,
    ErrorCode.INVALID_REQUEST,
    ErrorCode.MODEL_NOT_FOUND,
    ErrorCode.REQUEST_TIMEOUT,
    ErrorCode.FILE_TOO_LARGE,
    ErrorCode.GPU_OOM,
    ErrorCode.SERVICE_UNAVAILABLE,
    ErrorCode.MODEL_LOAD_FAILED,
    ErrorCode.WORKER_BUSY,
)
DESCRIPTION = (
    "An asrpool worker: one Whisper model behind OpenAI's audio API, for the router (or any "
    "OpenAI client). Errors are in OpenAI's shape with a stable `code`, also in the "
    "`x-asrpool-error-code` header; every answer carries `x-asrpool-slots` and "
    "`x-asrpool-in-flight`."
)


class Readiness(TypedDict):
    """What the worker says of itself; ``recovery`` only while it recovers."""

    status: Literal["ready", "loading", "model_load_failed", "recovering"]
    model: str
    memory: dict[str, float]
    load: dict[str, int]
    recovery: NotRequired[dict[str, Any]]


@dataclass(frozen=True)
class Admission:
    """What one admitted decode holds until ``WorkerState.finish``."""

    engine: WhisperEngine
    reservation: int
    ticket: int


class WorkerState:
    """What the routes share: the engine once loaded, the guard, recovery, the metrics."""

    def __init__(
        self,
        settings: WorkerSettings,
        model_dir: str,
        metrics: WorkerMetrics,
        load_engine: EngineLoader,
    ) -> None:
        self.settings = settings
        self.model_dir = model_dir
        self.metrics = metrics
        self.load_engine = load_engine
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
        # CTranslate2 runs num_workers decodes at once; more threads would only queue inside it
        # (with batching, more wait in the batcher to share a call: settings.engine_calls).
        self.decode_slots = anyio.CapacityLimiter(settings.engine_calls)
        # What all routers together may send at once (see slots.py).
        self.slots = SlotGate(settings.resolved_slots)
        self.recovery = OomRecovery(settings.oom_recovery_after)
        self.recovery_started = 0.0
        # Held so the task is not garbage-collected mid-reload, and cancelled at shutdown.
        self.reload_task: asyncio.Task[None] | None = None

    def require_engine(self) -> WhisperEngine:
        if self.recovery.recovering:
            raise AsrpoolError(ErrorCode.SERVICE_UNAVAILABLE, RECOVERING_MESSAGE)
        if self.engine is not None:
            return self.engine
        if self.load_error is not None:
            raise AsrpoolError(ErrorCode.MODEL_LOAD_FAILED)
        raise AsrpoolError(
            ErrorCode.SERVICE_UNAVAILABLE, "The model is still loading. Try again shortly."
        )

    def admit(self, seconds: float) -> Admission:
        """Hold memory and a recovery ticket for one decode, or raise the refusal.

        No await inside: the checks and the holds happen in one step of the event loop,
        so recovery cannot begin, nor the engine change, between them.
        """
        engine = self.require_engine()
        reservation = self.guard.reserve(seconds)
        if reservation is None:
            log.info("memory guard refused %.1fs of audio: %s", seconds, self.guard.snapshot())
            raise AsrpoolError(ErrorCode.GPU_OOM)
        admission = Admission(engine, reservation, self.recovery.begin())
        self.metrics.in_flight.inc()
        self.metrics.memory_reserved_mb.set(self.guard.reserved_mb)
        return admission

    def finish(self, admission: Admission, result: DecodeResult) -> None:
        """Give back what ``admit`` held, and start recovery or the reload when it is due."""
        self.guard.release(admission.reservation)
        self.metrics.in_flight.dec()
        self.metrics.memory_reserved_mb.set(self.guard.reserved_mb)
        step = self.recovery.end(admission.ticket, result)
        if step.started:
            self.recovery_started = time.monotonic()
            self.metrics.recovering.set(1)
            log.warning(
                "engine ran out of memory %d times in a row with nothing else in flight: "
                "not ready while it drains (%d in flight) and reloads",
                self.recovery.lone_ooms,
                self.recovery.in_flight,
            )
        if step.reload:
            self.reload_task = asyncio.create_task(self.reload())

    async def load(self) -> bool:
        """Load the engine and warm it up, in threads; on failure keep the reason."""
        started = time.monotonic()
        try:
            engine = await anyio.to_thread.run_sync(self.load_engine, self.settings)
            await anyio.to_thread.run_sync(engine.warm_up)
        except Exception as exc:
            self.load_error = str(exc)
            log.error("model %s failed to load: %s", self.model_dir, exc)
            return False
        engine.observe_batches(
            lambda windows, reason: self.metrics.batch_windows.labels(reason).observe(windows)
        )
        self.engine = engine
        self.load_error = None
        log.info("model %s ready in %.1fs", self.settings.model_name, time.monotonic() - started)
        return True

    async def reload(self) -> None:
        """Drop the engine and load it again; recovery has drained, so nothing decodes."""
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                await anyio.to_thread.run_sync(engine.unload)
            except Exception as exc:  # the reload below may still find the memory
                log.warning("engine unload failed: %s", exc)
        # The last reference must go before the new engine allocates: on CUDA nothing else
        # in this process can free what the old one holds.
        del engine
        gc.collect()
        ooms = self.recovery.lone_ooms
        ok = await self.load()
        self.recovery.reloaded(ok)
        self.metrics.engine_reloads.labels("ok" if ok else "failed").inc()
        self.metrics.recovering.set(0)
        took = time.monotonic() - self.recovery_started
        if ok:
            log.info("engine reloaded after %d lone OOMs; ready again after %.1fs", ooms, took)
        else:
            log.error("engine reload after %d lone OOMs failed after %.1fs", ooms, took)


def create_app(
    settings: WorkerSettings,
    model_dir: str,
    load_engine: EngineLoader,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    state = WorkerState(
        settings, model_dir, WorkerMetrics(registry or CollectorRegistry()), load_engine
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(state.load())
        yield
        for task in (loading, state.reload_task):
            if task is not None and not task.done():
                task.cancel()

    app = FastAPI(title="asrpool worker", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.add_middleware(HeadAsGet)
    app.add_middleware(LoadHeaders, slots=state.slots)
    app.state.worker = state
    install_error_handlers(app)
    install_openapi(app, description=DESCRIPTION)
    # With a worker token, /v1 serves routers only (401 otherwise); health and metrics stay open.
    only_routers = [Depends(RouterOnly(settings.worker_token))]
    refused = (ErrorCode.UNAUTHORIZED,) if settings.worker_token else ()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Loading, failed, or recovering."}},
    )
    async def readyz() -> JSONResponse:
        body: Readiness = {
            "status": "ready",
            "model": settings.model_name,
            "memory": state.guard.snapshot(),
            "load": {"slots": state.slots.slots, "in_flight": state.slots.in_use},
        }
        if state.recovery.recovering:
            body["recovery"] = state.recovery.snapshot()
            return JSONResponse({**body, "status": "recovering"}, status_code=503)
        if state.engine is not None:
            return JSONResponse(body)
        if state.load_error is not None:
            return JSONResponse({**body, "status": "model_load_failed"}, status_code=503)
        return JSONResponse({**body, "status": "loading"}, status_code=503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        **text_route(CONTENT_TYPE_LATEST.split(";")[0], "Prometheus metrics (text format)."),
    )
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=only_routers, responses=error_responses(*refused))
    async def models() -> ModelList:
        return {
            "object": "list",
            "data": [
                {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "asrpool"}
            ],
        }

    upload_mb = settings.max_upload_bytes
    errors = (*AUDIO_ERRORS, *refused)

    @app.post(
        "/v1/audio/transcriptions",
        dependencies=only_routers,
        **audio_route(summary="Transcribe audio", errors=errors, max_upload_bytes=upload_mb),
    )
    async def transcriptions(request: Request) -> Response:
        return await _handle(request, state, task="transcribe", endpoint="transcriptions")

    @app.post(
        "/v1/audio/translations",
        dependencies=only_routers,
        **audio_route(
            summary="Translate audio into English", errors=errors, max_upload_bytes=upload_mb
        ),
    )
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
    state.require_engine()  # refuse at once, before reading the upload
    form, upload = await read_audio_form(request, settings.max_upload_bytes)
    try:
        fields = {k: [str(v) for v in form.getlist(k)] for k in form if k != "file"}
        parsed = parse_request(fields, task=task, served_model=settings.model_name)
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:  # a file part that did not declare its size
            raise too_large(settings.max_upload_bytes)
    finally:
        await form.close()
    # After the upload is read (refusing mid-upload would reset the router's connection),
    # before any work is spent on it.
    if not state.slots.try_take():
        state.metrics.busy_rejections.inc()
        raise AsrpoolError(ErrorCode.WORKER_BUSY)
    slot = Once(state.slots.give_back)
    try:
        if parsed.stream:
            return await _open_stream(state, data, parsed, slot)
        return await _decode(state, data, parsed)
    finally:
        if not parsed.stream:
            slot()


async def _open_stream(
    state: WorkerState, data: bytes, parsed: AudioRequest, slot: Once
) -> Response:
    """stream=true: everything that can fail as a plain HTTP error happens here, first."""
    try:
        samples = await anyio.to_thread.run_sync(audio.decode, data)
        seconds = audio.duration_seconds(samples)
        admission = state.admit(seconds)
    except BaseException:
        slot()
        raise
    outcome = {"result": DecodeResult.OTHER}
    decode = Once(lambda: state.finish(admission, outcome["result"]))
    try:
        head, segments = await anyio.to_thread.run_sync(
            admission.engine.stream, samples, parsed.options, limiter=state.decode_slots
        )
    except AsrpoolError as exc:
        if exc.code is ErrorCode.GPU_OOM:
            outcome["result"] = DecodeResult.OOM
        decode()
        slot()
        raise
    except BaseException:
        decode()
        slot()
        raise
    body = _events(state, head, segments, parsed, outcome, seconds)
    return OwnedStream(body, stream_events.MEDIA_TYPE, [decode, slot])


async def _events(
    state: WorkerState,
    head: Transcript,
    segments: Iterator[Segment],
    parsed: AudioRequest,
    outcome: dict[str, DecodeResult],
    seconds: float,
) -> AsyncIterator[bytes]:
    """One delta per segment as it is decoded, then done; an error event if decoding fails."""
    started = time.monotonic()
    opts = parsed.options
    texts: list[str] = []
    decoded: list[Segment] = []
    try:
        while True:
            # One 30 s window decodes per step; between steps a client gone stops us.
            segment = await anyio.to_thread.run_sync(
                next, segments, None, limiter=state.decode_slots
            )
            if segment is None:
                break
            text = segment.text.lstrip() if not texts and opts.offset_s == 0 else segment.text
            texts.append(text)
            decoded.append(segment)
            lp = formats.logprobs([segment]) if opts.logprobs else None
            yield stream_events.encode(stream_events.delta(text, logprobs=lp, end_s=segment.end))
    except AsrpoolError as exc:
        if exc.code is ErrorCode.GPU_OOM:
            outcome["result"] = DecodeResult.OOM
        yield stream_events.encode(stream_events.error(exc.code, exc.message))
        return
    outcome["result"] = DecodeResult.OK
    state.metrics.decode_seconds.observe(time.monotonic() - started)
    state.metrics.audio_seconds.inc(seconds)
    yield stream_events.encode(
        stream_events.done(
            "".join(texts),
            audio_seconds=head.duration,
            output_tokens=sum(len(s.tokens) for s in decoded),
            logprobs=formats.logprobs(decoded) if opts.logprobs else None,
        )
    )


async def _decode(state: WorkerState, data: bytes, parsed: AudioRequest) -> Response:
    samples = await anyio.to_thread.run_sync(audio.decode, data)
    seconds = audio.duration_seconds(samples)
    # Checked again: recovery may have begun, or replaced the engine, while we read and decoded.
    admission = state.admit(seconds)
    result = DecodeResult.OTHER
    started = time.monotonic()
    try:
        # Not abandoned on cancel: the reservation must cover the decode until it really ends.
        transcript = await anyio.to_thread.run_sync(
            admission.engine.transcribe, samples, parsed.options, limiter=state.decode_slots
        )
        result = DecodeResult.OK
    except AsrpoolError as exc:
        if exc.code is ErrorCode.GPU_OOM:
            result = DecodeResult.OOM
        raise
    finally:
        state.finish(admission, result)
    state.metrics.decode_seconds.observe(time.monotonic() - started)
    state.metrics.audio_seconds.inc(seconds)

    fmt = FORMATS[parsed.response_format]
    rendered = fmt.render(transcript, parsed.options.word_timestamps)
    if isinstance(rendered, dict):
        if parsed.options.logprobs:
            rendered["logprobs"] = formats.logprobs(transcript.segments)
        return JSONResponse(rendered)
    return PlainTextResponse(rendered, media_type=fmt.media_type)


class LoadHeaders:
    """ASGI middleware: every answer says the worker's slots and how many are in use."""

    def __init__(self, app: ASGIApp, slots: SlotGate) -> None:
        self.app = app
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_load(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    *message.get("headers", []),
                    (SLOTS_HEADER.encode(), str(self.slots.slots).encode()),
                    (IN_FLIGHT_HEADER.encode(), str(self.slots.in_use).encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_load)
