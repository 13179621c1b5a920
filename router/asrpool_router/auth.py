"""Bearer-token auth for the API routes; health, readiness and metrics stay open.

Keys are compared in constant time, every key every time, so timing tells an
attacker nothing about which key nearly matched. Keys are never logged.
"""

from __future__ import annotations

from fastapi import Request

from asrpool.credentials import bearer_token, key_matches
from asrpool.wire import AsrpoolError, ErrorCode

__all__ = ["ApiKeyAuth", "bearer_token", "key_matches"]


class ApiKeyAuth:
    """A FastAPI dependency; open when auth is off."""

    def __init__(self, enabled: bool, keys: tuple[str, ...]) -> None:
        if enabled and not keys:
            raise ValueError("auth is on but no API keys are configured (ASRPOOL_API_KEYS)")
        self.enabled = enabled
        self.keys = keys

    def check(self, token: str | None) -> None:
        if self.enabled and (token is None or not key_matches(token, self.keys)):
            raise AsrpoolError(ErrorCode.UNAUTHORIZED)

    async def __call__(self, request: Request) -> None:
        self.check(bearer_token(request.headers.get("authorization")))
