"""The router's settings, gathered once from flags and environment, and its API keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from asrpool_contract.pool_spec import Concurrency, Ejection, Retry
from asrpool_contract.server_limits import ServerLimits

# The static pool (--backend) has an ASRPool's defaults.
_CONCURRENCY, _RETRY, _EJECTION = Concurrency(), Retry(), Ejection()


@dataclass(frozen=True)
class RouterSettings(ServerLimits):
    """The router's settings; the upload limit and client timeouts come from ServerLimits."""

    host: str = "127.0.0.1"
    port: int = 8000
    backends: tuple[str, ...] = ()  # static worker URLs (asrpool local, asrpool router)
    kubernetes: bool = False  # discover pools from ASRPools and their EndpointSlices instead
    namespace: str | None = None  # where to watch (default: the pod's own namespace)
    auth: bool = True
    api_keys: tuple[str, ...] = ()
    per_pod: int = _CONCURRENCY.per_pod
    # Other names clients may send, as (name, pool model) pairs (--alias NAME=POOL).
    aliases: tuple[tuple[str, str], ...] = ()
    max_queue: int = _CONCURRENCY.max_queue
    queue_timeout_s: float = _CONCURRENCY.queue_timeout_s
    # Uploads at least this long are cut at pauses and decoded across the pool; 0: never.
    shard_min_s: float = 60.0
    # Decode every upload here, once, and send pods 16 kHz mono WAV (app._decode_once).
    decode_uploads: bool = True
    # Answers to identical requests, kept (logic/result_cache.py): this much memory (0: off),
    # or in Redis (shared by a fleet of routers) for cache_ttl_s.
    cache_mb: float = 64.0
    cache_redis: str | None = None
    cache_ttl_s: float = 3600.0
    max_attempts: int = _RETRY.max_attempts  # a cap on attempts per request; 0: none
    request_timeout_s: float = _RETRY.request_timeout_s  # one attempt's, however long the audio
    # Outlier ejection (logic/breaker.py): faults in a row, first cool-down, most out at once.
    eject_after: int = _EJECTION.consecutive_failures
    ejection_s: float = _EJECTION.base_ejection_s
    max_ejection_percent: float = _EJECTION.max_ejection_percent
    attempt_timeout_base_s: float = 30.0  # every attempt gets at least this long
    health_interval_s: float = 2.0
    # All uploads held at once (memory + spool files, while queued and across retries);
    # past it uploads get 429 queue_full. 0: no cap.
    max_spooled_mb: float = 4096.0
    max_sessions: int = 256  # live (realtime) sessions open at once, in total
    max_sessions_per_key: int = 16  # … and per API key
    session_idle_timeout_s: float = 120.0  # a session with no client message this long ends
    # Shown to every worker (asrpool_contract.credentials): workers refuse /v1 calls without it.
    worker_token: str | None = field(default=None, repr=False)


def load_api_keys(keys_file: str | None) -> tuple[str, ...]:
    """Keys from ``ASRPOOL_API_KEYS`` (comma separated) and a keys file (one a line, # notes)."""
    keys = [k.strip() for k in os.environ.get("ASRPOOL_API_KEYS", "").split(",")]
    if keys_file:
        for line in Path(keys_file).read_text().splitlines():
            keys.append(line.split("#", 1)[0].strip())
    return tuple(k for k in keys if k)
