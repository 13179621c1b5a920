"""Only routers may ask a worker for work: the token check on the worker's ``/v1`` routes.

A FastAPI dependency. With a token set (``asrpool_contract.credentials``: the Secret the operator
mounts, or the one ``asrpool local`` makes) a call without ``Authorization: Bearer <token>`` gets
401 ``unauthorized``; health, readiness and metrics stay open for the kubelet and Prometheus.
Without a token (a worker run by hand) every caller is served, as before.
"""

from __future__ import annotations

from fastapi import Request

from asrpool_contract.credentials import bearer_token, key_matches
from asrpool_contract.wire import AsrpoolError, ErrorCode

MESSAGE = (
    "This speech server takes requests from an asrpool router only. "
    "Send them to the router, with your API key."
)


class RouterOnly:
    def __init__(self, token: str | None) -> None:
        self._tokens = (token,) if token else ()

    async def __call__(self, request: Request) -> None:
        if not self._tokens:
            return
        token = bearer_token(request.headers.get("authorization"))
        if token is None or not key_matches(token, self._tokens):
            raise AsrpoolError(ErrorCode.UNAUTHORIZED, MESSAGE)
