"""The router's HTTP surface: OpenAI audio routes, models, stats, health, metrics.

``create_app(settings)`` wires the parts (pools, discovery, HTTP client to the
pods, metrics registry, auth) and nothing else holds state. A request's trip:
auth → read the upload once (spooled to disk when large) → pick the pool by
``model`` → ``dispatch.forward`` (slot, attempt, retry) → relay the pod's answer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from asrpool.credentials import worker_headers
from asrpool.http_errors import install_error_handlers
from asrpool.uploads import read_audio_form
from asrpool.wire import AsrpoolError, ErrorCode

from .auth import ApiKeyAuth
from .discovery import StaticDiscovery
from .dispatch import Job, Timeouts, forward
from .kube_api import KubeApi, load_kube_config
from .kube_discovery import KubeDiscovery
from .logic.audio_estimate import estimate_audio_seconds
from .logic.pool import PoolPolicy
from .logic.request import Priority
from .logic.session_slots import SessionSlots
from .logic.stats import merge
from .logic.upload_budget import SpoolBudget
from .metrics import RouterMetrics
from .pools import PoolRegistry
from .realtime import RealtimeSession, SessionLimits
from .settings import RouterSettings
from .transport import BufferedUpload

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

_PRIORITY_HEADER = "x-asrpool-priority"
_PRIORITIES = {"interactive": Priority.INTERACTIVE, "batch": Priority.BATCH}


def policy_from(settings: RouterSettings) -> PoolPolicy:
    return PoolPolicy(
        per_pod=settings.per_pod,
        max_queue=settings.max_queue,
        queue_timeout_s=settings.queue_timeout_s,
        request_timeout_s=settings.request_timeout_s,
        max_attempts=settings.max_attempts,
        breaker_failures=settings.eject_after,
        breaker_cooldown_s=settings.ejection_s,
        breaker_max_cooldown_s=max(120.0, settings.ejection_s),
        max_ejection_percent=settings.max_ejection_percent,
    )


class RouterState:
    def __init__(self, settings: RouterSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = RouterMetrics(registry)
        self.rng = random.Random()
        self.pools = PoolRegistry(lambda model: policy_from(settings), self.metrics, self.rng)
        self.metrics.watch_pools(lambda: [r.pool.snapshot() for r in self.pools.runners()])
        # Pods get many concurrent requests; keep connections to them alive and reused.
        # Idle connections are dropped before the 5 s keep-alive of uvicorn-based servers
        # (ours sets more): reusing one the server is closing fails the attempt.
        self.client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=64, keepalive_expiry=4.0
            ),
            headers=worker_headers(settings.worker_token),
        )
        self.discovery: StaticDiscovery | KubeDiscovery
        if settings.kubernetes:
            config = load_kube_config()
            self.discovery = KubeDiscovery(
                KubeApi(config), settings.namespace or config.namespace, self.pools
            )
        else:
            self.discovery = StaticDiscovery(
                settings.backends, self.pools, self.client, settings.health_interval_s
            )
        self.timeouts = Timeouts(settings.attempt_timeout_base_s, settings.request_timeout_s)
        self.session_limits = SessionLimits(idle_timeout_s=settings.session_idle_timeout_s)
        self.sessions = SessionSlots(settings.max_sessions, settings.max_sessions_per_key)
        self.spool = SpoolBudget(int(settings.max_spooled_mb * 2**20))


def create_app(settings: RouterSettings, registry: CollectorRegistry | None = None) -> FastAPI:
    state = RouterState(settings, registry or CollectorRegistry())
    auth = ApiKeyAuth(settings.auth, settings.api_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.discovery.start()
        yield
        await state.discovery.stop()
        await state.client.aclose()

    app = FastAPI(title="asrpool router", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.router = state
    install_error_handlers(app)
    api = [Depends(auth)]

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = state.discovery.ready()
        return JSONResponse(
            {"status": "ready" if ready else "no_ready_pods"}, status_code=200 if ready else 503
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=api)
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(r.model) for r in state.pools.runners()]}

    @app.get("/v1/models/{model}", dependencies=api)
    async def model(model: str) -> dict[str, Any]:
        return _model_card(state.pools.resolve(model).model)

    @app.get("/stats", dependencies=api)
    async def stats() -> dict[str, Any]:
        pools = [r.snapshot() for r in state.pools.runners()]
        total = merge([r.stats for r in state.pools.runners()])
        return {
            **total.view(
                max_concurrent=sum(int(p["max_concurrent"]) for p in pools),  # type: ignore[call-overload]
                active_tasks=sum(int(p["active_tasks"]) for p in pools),  # type: ignore[call-overload]
            ),
            "queue_depth": sum(int(p["queue_depth"]) for p in pools),  # type: ignore[call-overload]
            "pools": pools,
        }

    @app.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        await RealtimeSession(websocket, state, state.session_limits).run(auth)

    @app.get("/", include_in_schema=False)
    async def recorder_page() -> FileResponse:
        # The page holds no secret: the user types the API key into it.
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            raise AsrpoolError(ErrorCode.NOT_FOUND, f"No file {name}.")
        return FileResponse(path)

    @app.post("/v1/audio/transcriptions", dependencies=api)
    async def transcriptions(request: Request) -> Response:
        return await _relay(request, state, "/v1/audio/transcriptions")

    @app.post("/v1/audio/translations", dependencies=api)
    async def translations(request: Request) -> Response:
        return await _relay(request, state, "/v1/audio/translations")

    return app


def _model_card(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "asrpool"}


async def _relay(request: Request, state: RouterState, path: str) -> Response:
    code, pool_label = "ok", "unknown"
    try:
        job, model = await _read_job(request, state, path)
        try:
            runner = state.pools.resolve(model)
            pool_label = runner.model
            # Pods serve the pool's model name: an alias or whisper-1 is said their way.
            job.upload.fields = [(k, v) for k, v in job.upload.fields if k != "model"]
            job.upload.fields.append(("model", runner.model))
            ok = False
            try:
                answer = await forward(runner, job, state.client, state.timeouts)
                ok = True
            finally:
                runner.stats.finished(ok=ok)
        finally:
            job.upload.file.close()  # the spooled copy of the upload
            request.state.upload_hold.release()  # …and its bytes leave the spool budget
        return Response(answer.content, status_code=answer.status, media_type=answer.content_type)
    except AsrpoolError as exc:
        code = exc.code.value
        raise
    finally:
        state.metrics.requests.labels(pool_label, code).inc()


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
    except BaseException:
        await form.close()
        hold.release()
        raise
    fields = [(k, str(v)) for k, v in form.multi_items() if k != "file"]
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
        response_format=next((v for k, v in fields if k == "response_format"), "") or "json",
    )
    model = next((v for k, v in fields if k == "model"), None)
    return job, model
