"""The limits every asrpool HTTP server keeps against its clients: the router and the worker.

One class both settings classes extend, so the flags are declared once; ``asrpool local``
reads them once and hands the same limits to its router and to every worker. The guards
themselves are ``http_server`` (timeouts) and ``uploads`` (the size).
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings_flags import flagged


@dataclass(frozen=True)
class ServerLimits:
    max_upload_mb: float = flagged(
        25.0,
        "--max-upload-mb",
        "ASRPOOL_MAX_UPLOAD_MB",
        "largest upload accepted, 413 past it (default: 25, OpenAI's limit)",
    )
    header_timeout_s: float = flagged(
        10.0,
        "--header-timeout",
        "ASRPOOL_HEADER_TIMEOUT",
        "seconds a client may take to send a request's headers (default: 10; 0 = none)",
    )
    body_timeout_s: float = flagged(
        30.0,
        "--body-timeout",
        "ASRPOOL_BODY_TIMEOUT",
        "seconds an upload may pause before it is stopped with 408 (default: 30; 0 = none)",
    )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)
