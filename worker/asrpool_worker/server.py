"""Run the worker under uvicorn: ``asrpool worker`` ends here.

SIGTERM (what Kubernetes sends) makes uvicorn stop accepting connections and
wait up to ``drain_timeout_s`` for requests in flight, so no decode is lost.
``asrpool_contract.http_server`` adds the slow-client guards (header and body timeouts) that the
worker and the router share.
"""

from __future__ import annotations

from asrpool_contract.http_server import ServerTimeouts, serve_http

from .app import create_app
from .engine import WhisperEngine, default_model_dir
from .settings import WorkerSettings


def load_engine(settings: WorkerSettings, model_dir: str) -> WhisperEngine:
    return WhisperEngine(
        model_dir,
        device=settings.device,
        compute_type=settings.resolved_compute_type,
        cpu_threads=settings.cpu_threads,
        num_workers=settings.num_workers,
        batching=settings.batch_policy,
        short_context=settings.short_context,
    )


def serve(settings: WorkerSettings) -> None:
    model_dir = settings.model_dir or default_model_dir()
    app = create_app(settings, model_dir, lambda s: load_engine(s, model_dir))
    serve_http(
        app,
        host=settings.host,
        port=settings.port,
        timeouts=ServerTimeouts(settings.header_timeout_s, settings.body_timeout_s),
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        # Workers sit behind the router; keep-alive connections from it are reused.
        timeout_keep_alive=30,
    )
