"""Bearer credentials: the users' API keys at the router, and the token routers show workers.

One home for both sides of the worker credential: the router sends ``Authorization: Bearer
<token>`` on every request to a worker (``worker_headers``); the worker refuses any ``/v1`` call
without it (401), so a pod or local process that reaches a worker directly cannot bypass the
router's keys, queues and budgets. The token comes from ``ASRPOOL_WORKER_TOKEN`` or from the file
``ASRPOOL_WORKER_TOKEN_FILE`` (``--worker-token-file``) names: a Secret the chart generates and
mounts into the routers and, through the operator, into the worker pods; ``asrpool local`` makes
one per run. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from .envflags import env_str

WORKER_TOKEN_ENV = "ASRPOOL_WORKER_TOKEN"
WORKER_TOKEN_FILE_ENV = "ASRPOOL_WORKER_TOKEN_FILE"
# The key of the chart's Secret, and the file name where pods mount it.
WORKER_TOKEN_KEY = "token"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def key_matches(token: str, keys: tuple[str, ...]) -> bool:
    """Whether ``token`` is one of ``keys``; every key is compared, in constant time, so timing
    tells an attacker nothing about which key nearly matched."""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    return matched


def worker_token(token_file: str | None = None) -> str | None:
    """The worker token: ``token_file``'s content (or ``ASRPOOL_WORKER_TOKEN_FILE``'s), else
    ``ASRPOOL_WORKER_TOKEN``; None when neither is set (workers then take any caller)."""
    path = token_file or env_str(WORKER_TOKEN_FILE_ENV)
    if path:
        token = Path(path).read_text().strip()
        if not token:
            raise ValueError(f"the worker token file {path} is empty")
        return token
    return env_str(WORKER_TOKEN_ENV)


def worker_headers(token: str | None) -> dict[str, str]:
    """What the router adds to every request it sends a worker."""
    return {"Authorization": f"Bearer {token}"} if token else {}
