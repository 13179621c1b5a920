"""The router's settings, gathered once from flags and environment, and its API keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RouterSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    backends: tuple[str, ...] = ()  # static worker URLs (asrpool local, asrpool router)
    kubernetes: bool = False  # discover pools from ASRPools and their EndpointSlices instead
    namespace: str | None = None  # where to watch (default: the pod's own namespace)
    auth: bool = True
    api_keys: tuple[str, ...] = ()
    per_pod: int = 2
    max_queue: int = 64
    queue_timeout_s: float = 120.0
    max_attempts: int = 4
    request_timeout_s: float = 300.0  # cap on one attempt, however long the audio
    attempt_timeout_base_s: float = 30.0  # every attempt gets at least this long
    health_interval_s: float = 2.0
    max_upload_mb: float = 25.0


def load_api_keys(keys_file: str | None) -> tuple[str, ...]:
    """Keys from ``ASRPOOL_API_KEYS`` (comma separated) and a keys file (one a line, # notes)."""
    keys = [k.strip() for k in os.environ.get("ASRPOOL_API_KEYS", "").split(",")]
    if keys_file:
        for line in Path(keys_file).read_text().splitlines():
            keys.append(line.split("#", 1)[0].strip())
    return tuple(k for k in keys if k)
