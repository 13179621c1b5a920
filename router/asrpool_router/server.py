"""Run the router under uvicorn: ``asrpool router`` and ``asrpool local`` end here.

``asrpool_contract.http_server`` adds the slow-client guards (header and body timeouts) that the
router and the worker share.
"""

from __future__ import annotations

import logging

from asrpool_contract.http_server import ServerTimeouts, serve_http

from .app import create_app
from .settings import RouterSettings

log = logging.getLogger(__name__)


def serve(settings: RouterSettings) -> None:
    if 0 < settings.max_spooled_mb < settings.max_upload_mb:
        # Not refused: a smaller cap is still safe, but the largest uploads can never fit.
        log.warning(
            "--max-spooled-mb %g is below --max-upload-mb %g: uploads larger than the cap "
            "will always get 429",
            settings.max_spooled_mb,
            settings.max_upload_mb,
        )
    serve_http(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        timeouts=ServerTimeouts(settings.header_timeout_s, settings.body_timeout_s),
        timeout_graceful_shutdown=30,
    )
