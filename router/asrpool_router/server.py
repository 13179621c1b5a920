"""Run the router under uvicorn: ``asrpool router`` and ``asrpool local`` end here."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .settings import RouterSettings


def serve(settings: RouterSettings) -> None:
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=30,
    )
