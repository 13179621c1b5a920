"""The router's HTTP surface: OpenAI audio routes, models, stats, health, metrics.

``create_app(settings)`` wires the parts (pools, discovery, HTTP client to the
pods, metrics registry, auth) and nothing else holds state. A request's trip:
auth → read the upload once (spooled to disk when large) → pick the pool by
``model`` → ``PoolRunner.forward`` (slot, attempt, retry) → relay the pod's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import anyio
import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from typing_extensions import TypedDict  # pydantic reads these on Python 3.11

from asrpool_contract import transcript_stream as stream_events
from asrpool_contract.audio import decode_pcm16, duration_seconds, is_whisper_wav, wav_bytes
from asrpool_contract.audio_answers import Model, ModelList
from asrpool_contract.audio_form import read_form
from asrpool_contract.credentials import worker_headers
from asrpool_contract.http_errors import install_error_handlers
from asrpool_contract.http_server import HeadAsGet, Once, OwnedStream
from asrpool_contract.openapi import audio_route, error_responses, install_openapi, text_route
from asrpool_contract.uploads import read_audio_form
from asrpool_contract.wire import (
    WHISPER_SAMPLE_RATE,
    AsrpoolError,
    ErrorCode,
    error_body,
    wants_chinese,
)

from .auth import ApiKeyAuth, bearer_token
from .cache import AnswerCache, MemoryCache, RedisCache, audio_digest
from .discovery import StaticDiscovery
from .dispatch import Job, PoolRunner, Timeouts
from .kube_discovery import KubeDiscovery
from .live import LiveView, stats_body
from .logic.audio_estimate import estimate_audio_seconds
from .logic.pool import PoolPolicy
from .logic.request import Priority
from .logic.result_cache import CachedAnswer, directive, request_key
from .logic.session_slots import SessionSlots
from .logic.shards import ShardPolicy
from .logic.upload_budget import SpoolBudget
from .metrics import Accounting
from .pools import PoolRegistry
from .realtime import RealtimeSession, SessionLimits
from .settings import RouterSettings
from .sharding import forward_sharded
from .transport import BufferedUpload, PodTransport

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# The pages' files by suffix, named here rather than guessed from the host's MIME tables
# (some map .js to text/plain, and browsers refuse a module script that is not JavaScript).
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}

_PRIORITY_HEADER = "x-asrpool-priority"
_PRIORITIES = {"interactive": Priority.INTERACTIVE, "batch": Priority.BATCH}

# What the audio routes may answer besides 200 (401 and 500 the document adds to every route).
AUDIO_ERRORS = (
    ErrorCode.INVALID_AUDIO,
    ErrorCode.INVALID_REQUEST,
    ErrorCode.MODEL_NOT_FOUND,
    ErrorCode.REQUEST_TIMEOUT,
    ErrorCode.FILE_TOO_LARGE,
    ErrorCode.QUEUE_FULL,
    ErrorCode.GPU_OOM,
    ErrorCode.QUEUE_TIMEOUT,
    ErrorCode.SERVICE_UNAVAILABLE,
    ErrorCode.MODEL_LOAD_FAILED,
    ErrorCode.TIMEOUT,
)
DESCRIPTION = (
    "asrpool's router: OpenAI's audio API in front of a pool of Whisper workers. Errors are "
    "in OpenAI's shape with a stable `code` (also in the `x-asrpool-error-code` header); "
    "`Accept-Language: zh` gives their messages in Chinese. Live transcription is the "
    "WebSocket `/v1/realtime` (docs/realtime.md), which OpenAPI does not describe."
)


class Readiness(TypedDict):
    status: Literal["ready", "no_ready_pods"]


def policy_from(settings: RouterSettings) -> PoolPolicy:
    return PoolPolicy(
        per_pod=settings.per_pod,
        max_queue=settings.max_queue,
        queue_timeout_s=settings.queue_timeout_s,
        request_timeout_s=settings.request_timeout_s,
        # Static backends are not brought up from zero by anyone: none ready is an outage.
        cold_start_timeout_s=0.0,
        max_attempts=settings.max_attempts,
        breaker_failures=settings.eject_after,
        breaker_cooldown_s=settings.ejection_s,
        breaker_max_cooldown_s=max(PoolPolicy.breaker_max_cooldown_s, settings.ejection_s),
        max_ejection_percent=settings.max_ejection_percent,
    )


class RouterState:
    def __init__(self, settings: RouterSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.accounting = Accounting(registry)
        self.rng = random.Random()
        # Pods get many concurrent requests; connections to them are kept alive and reused.
        # Workers serve routers only: the worker token goes with every call to a pod.
        self.transport = PodTransport(headers=worker_headers(settings.worker_token))
        self.timeouts = Timeouts(settings.attempt_timeout_base_s, settings.request_timeout_s)
        self.pools = PoolRegistry(
            lambda model: policy_from(settings),
            self.new_runner,
            fixed_aliases=dict(settings.aliases),
        )
        self.accounting.watch_pools(lambda: [r.snapshot() for r in self.pools.runners()])
        self.discovery: StaticDiscovery | KubeDiscovery
        if settings.kubernetes:
            self.discovery = KubeDiscovery(self.pools, settings.namespace)
        else:
            self.discovery = StaticDiscovery(
                settings.backends, self.pools, self.transport, settings.health_interval_s
            )
        self.session_limits = SessionLimits(idle_timeout_s=settings.session_idle_timeout_s)
        self.sessions = SessionSlots(settings.max_sessions, settings.max_sessions_per_key)
        self.accounting.sessions_open.set_function(lambda: self.sessions.open_total)
        self.spool = SpoolBudget(int(settings.max_spooled_mb * 2**20))
        self.shard_policy = ShardPolicy(min_audio_s=max(settings.shard_min_s, 30.0))
        self.cache: AnswerCache | None = None
        if settings.cache_redis:
            max_answer = int(max(settings.cache_mb, 8.0) * 2**20) // 8
            self.cache = RedisCache(settings.cache_redis, settings.cache_ttl_s, max_answer)
        elif settings.cache_mb > 0:
            self.cache = MemoryCache(int(settings.cache_mb * 2**20))
        self.live = LiveView(self.pools, self.accounting, self.sessions)

    def new_runner(self, model: str, policy: PoolPolicy) -> PoolRunner:
        return PoolRunner(
            model, policy, self.accounting, self.transport, self.timeouts, rng=self.rng
        )


def create_app(settings: RouterSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    state = RouterState(settings, registry or CollectorRegistry())
    auth = ApiKeyAuth(settings.auth, settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.transport.start()
        await state.discovery.start()
        sampler = asyncio.create_task(state.live.run())
        yield
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await state.discovery.stop()
        await state.transport.close()
        if state.cache is not None:
            await state.cache.close()

    app = FastAPI(title="asrpool router", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.router = state
    app.add_middleware(HeadAsGet)
    install_error_handlers(app)
    install_openapi(app, description=DESCRIPTION)
    api = auth.dependencies()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "No pod is ready."}},
    )
    async def readyz() -> JSONResponse:
        ready = state.discovery.ready()
        body: Readiness = {"status": "ready" if ready else "no_ready_pods"}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        **text_route(CONTENT_TYPE_LATEST.split(";")[0], "Prometheus metrics (text format)."),
    )
    async def metrics() -> Response:
        return Response(generate_latest(state.accounting.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=api)
    async def models() -> ModelList:
        return {"object": "list", "data": [_model_card(*n) for n in state.pools.names()]}

    @app.get(
        "/v1/models/{model}", dependencies=api, responses=error_responses(ErrorCode.MODEL_NOT_FOUND)
    )
    async def model(model: str) -> Model:
        pool = state.pools.resolve(model).model
        kind = next((k for n, _, k in state.pools.names() if n == model), "pool")
        return _model_card(model, pool, kind)

    @app.get("/stats", dependencies=api)
    async def stats() -> dict[str, Any]:
        return asdict(stats_body(state.pools.runners()))

    @app.get("/stats/live", dependencies=api)
    async def stats_live() -> dict[str, Any]:
        # What the dashboard and `asrpool status --watch` poll: /stats plus the last minutes.
        return state.live.body()

    @app.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        session = RealtimeSession(websocket, state.pools, state.sessions, state.session_limits)
        await session.run(auth)

    @app.get("/", include_in_schema=False)
    async def recorder_page() -> FileResponse:
        # The page holds no secret: the user types the API key into it.
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        # Like the recorder page: no secret in it; its data (/stats/live) wants the key.
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            raise AsrpoolError(ErrorCode.NOT_FOUND, f"No file {name}.")
        return FileResponse(path, media_type=STATIC_TYPES.get(path.suffix))

    upload_mb = settings.max_upload_bytes

    @app.post(
        "/v1/audio/transcriptions",
        dependencies=api,
        **audio_route(summary="Transcribe audio", errors=AUDIO_ERRORS, max_upload_bytes=upload_mb),
    )
    async def transcriptions(request: Request) -> Response:
        return await _relay(request, state, "/v1/audio/transcriptions")

    @app.post(
        "/v1/audio/translations",
        dependencies=api,
        **audio_route(
            summary="Translate audio into English", errors=AUDIO_ERRORS, max_upload_bytes=upload_mb
        ),
    )
    async def translations(request: Request) -> Response:
        return await _relay(request, state, "/v1/audio/translations")

    return app


def _model_card(name: str, pool: str, kind: str) -> Model:
    """OpenAI's model object; ``asrpool_pool`` / ``asrpool_kind`` say what the name reaches."""
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "asrpool",
        "asrpool_pool": pool,
        "asrpool_kind": kind,  # pool, alias, or openai (OpenAI's names for the default pool)
    }


async def _relay(request: Request, state: RouterState, path: str) -> Response:
    try:
        job, model = await _read_job(request, state, path)
    except AsrpoolError as exc:  # refused before it had a pool: too large, not a form…
        state.accounting.finished(None, exc.code.value)
        raise
    done = _Finish(request, state, job)
    streaming = False  # once the stream's response exists, it ends the request
    try:
        runner = state.pools.resolve(model)
        done.pool = runner
        # Pods serve the pool's model name: an alias or an OpenAI name is said their way.
        job.upload.fields = [(k, v) for k, v in job.upload.fields if k != "model"]
        job.upload.fields.append(("model", runner.model))
        if job.stream:
            job, _ = await _decode_once(job, request, state.settings)
            response = await _relay_stream(runner, job, state, request, done)
            streaming = True
            return response
        cached = await _cache_lookup(state, request, job, runner.model, path)
        if isinstance(cached, Response):
            done.ok = True
            return cached
        answer = None
        job, samples = await _decode_once(job, request, state.settings)
        if _worth_cutting(job, state.settings):
            if samples is None:
                samples = await _decoded(job, request)
            if samples is not None:
                answer = await forward_sharded(runner, job, samples, state.shard_policy)
        if answer is None:
            answer = await runner.forward(job)
        done.ok = True
        if cached is not None and state.cache is not None and answer.status == 200:
            await state.cache.put(cached, CachedAnswer(answer.content_type, answer.content))
        response = Response(
            answer.content, status_code=answer.status, media_type=answer.content_type
        )
        if cached is not None:
            response.headers[CACHE_HEADER] = "miss"
        return response
    except AsrpoolError as exc:
        done.code = exc.code.value
        raise
    finally:
        if not streaming:
            done()


CACHE_HEADER = "x-asrpool-cache"


async def _cache_lookup(
    state: RouterState, request: Request, job: Job, pool: str, path: str
) -> Response | str | None:
    """A kept answer (hit), or the key to keep this one under (miss), or None (no cache)."""
    if state.cache is None:
        return None
    allowed = directive(request.headers.get("cache-control"))
    if not allowed.write:
        return None
    key = request_key(
        tenant=bearer_token(request.headers.get("authorization")) or "",
        path=path,
        pool=pool,
        fields=job.upload.fields,
        audio_digest=await audio_digest(job.upload.file),
    )
    hit = await state.cache.get(key) if allowed.read else None
    state.accounting.account(pool).looked_up(hit=hit is not None)
    if hit is None:
        return key
    return Response(hit.content, media_type=hit.content_type, headers={CACHE_HEADER: "hit"})


def _worth_cutting(job: Job, settings: RouterSettings) -> bool:
    """Long enough (by the upload's size, a rough guess) to be worth decoding here and
    cutting across the pool; a stream or logprobs need one pod's decode."""
    if settings.shard_min_s <= 0 or job.stream:
        return False
    if any(k.startswith("include") and v == "logprobs" for k, v in job.upload.fields):
        return False
    return job.audio_seconds >= settings.shard_min_s / 2


async def _decode_once(
    job: Job, request: Request, settings: RouterSettings
) -> tuple[Job, np.ndarray | None]:
    """The job as pods will get it: with ``--decode-uploads`` (on by default) its audio is
    decoded here, once, and every attempt sends the same 16 kHz mono WAV, which pods read
    without FFmpeg; its length is then exact (attempt timeouts, load) and an undecodable
    upload is refused here, before it costs a pod. Off, or with no room in the spool
    budget, the job is sent as the client uploaded it (and its samples are None)."""
    if not settings.decode_uploads:
        return job, None
    samples = await _decoded(job, request)
    if samples is None:
        return job, None
    seconds = duration_seconds(samples)
    job.upload.file.seek(0)
    if is_whisper_wav(job.upload.file.read(WAV_HEAD_BYTES)):
        return dataclasses.replace(job, audio_seconds=seconds), samples  # already what pods read
    wav = wav_bytes(samples)
    upload = dataclasses.replace(
        job.upload,
        filename=_wav_name(job.upload.filename),
        content_type="audio/wav",
        file=io.BytesIO(wav),
        size=len(wav),
    )
    return dataclasses.replace(job, upload=upload, audio_seconds=seconds), samples


# Enough of a WAV to read its format (RIFF, fmt and the data chunk's head; wave.open
# needs no more to say whether it is 16 kHz mono PCM16).
WAV_HEAD_BYTES = 4096


def _wav_name(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return (stem or "audio") + ".wav"


async def _decoded(job: Job, request: Request) -> np.ndarray | None:
    """The upload as 16 kHz PCM (undecodable: 400 here, before it costs a pod); None when
    the spool budget has no room for the decoded copy (then it goes to one pod whole)."""
    job.upload.file.seek(0)
    data = job.upload.file.read()
    samples = await anyio.to_thread.run_sync(decode_pcm16, data)
    # The decoded audio and its pieces stay in memory until the answer: count them.
    if not request.state.upload_hold.take(2 * samples.nbytes):
        log.info(
            "no room in the spool budget to cut %.0fs of audio", samples.size / WHISPER_SAMPLE_RATE
        )
        return None
    return samples


class _Finish:
    """Ends one request once, however it ends: its upload closed (and out of the spool
    budget), how it ended counted (``Accounting.finished``)."""

    def __init__(self, request: Request, state: RouterState, job: Job) -> None:
        self.request, self.state, self.job = request, state, job
        self.pool: PoolRunner | None = None
        self.ok = False
        self.code = "ok"
        self._once = Once(self._finish)

    def __call__(self) -> None:
        self._once()

    def _finish(self) -> None:
        self.job.upload.file.close()  # the spooled copy of the upload
        self.request.state.upload_hold.release()
        code = "ok" if self.ok else ("cancelled" if self.code == "ok" else self.code)
        self.state.accounting.finished(None if self.pool is None else self.pool.model, code)


async def _relay_stream(
    runner: PoolRunner, job: Job, state: RouterState, request: Request, done: _Finish
) -> Response:
    """stream=true. Until the first event the request can still fail as a plain HTTP error
    (every pod refused it, the queue is full); after it, failures are ``error`` events."""
    events = runner.forward_stream(job)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    chinese = wants_chinese(request.headers.get("accept-language"))

    async def body() -> AsyncIterator[bytes]:
        yield stream_events.encode(first)
        try:
            async for event in events:
                yield stream_events.encode(event)
            done.ok = True
        except AsrpoolError as exc:
            done.code = exc.code.value
            error = error_body(exc.code, exc.message, param=exc.param, chinese=chinese)
            yield stream_events.encode({"type": stream_events.ERROR, **error})

    # Closing ``events`` gives its slot back if the client left mid-stream (or before).
    return OwnedStream(body(), stream_events.MEDIA_TYPE, [events.aclose, done])


async def _read_job(request: Request, state: RouterState, path: str) -> tuple[Job, str | None]:
    # The upload's bytes count against the spool budget until _relay closes the upload.
    hold = request.state.upload_hold = state.spool.hold()
    try:
        form, upload = await read_audio_form(request, state.settings.max_upload_bytes, hold=hold)
    except BaseException:
        hold.release()
        raise
    try:
        size = upload.size if upload.size is not None else 0
        head = await upload.read(4096)
        await upload.seek(0)
        fields = [(k, str(v)) for k, v in form.multi_items() if k != "file"]
        values: dict[str, list[str]] = {}
        for k, v in fields:
            values.setdefault(k, []).append(v)
        # Refused here, with the worker's own words, before the request takes a slot.
        audio = read_form(values)
    except BaseException:
        await form.close()
        hold.release()
        raise
    priority = _PRIORITIES.get(
        request.headers.get(_PRIORITY_HEADER, "").lower(), Priority.INTERACTIVE
    )
    job = Job(
        path=path,
        upload=BufferedUpload(
            filename=upload.filename or "audio",
            content_type=upload.content_type or "application/octet-stream",
            file=upload.file,
            size=size,
            fields=fields,
        ),
        audio_seconds=estimate_audio_seconds(head, size),
        priority=priority,
        response_format=audio.response_format,
        stream=audio.stream,
    )
    return job, audio.model
