"""Bearer-token auth for the API routes; health, readiness and metrics stay open.

Keys are compared in constant time, every key every time, so timing tells an
attacker nothing about which key nearly matched. Keys are never logged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPBearer

from asrpool_contract.credentials import bearer_token, key_matches
from asrpool_contract.wire import AsrpoolError, ErrorCode

__all__ = ["ApiKeyAuth", "bearer_token", "key_matches"]

# Declares the scheme in the OpenAPI document (so clients and fuzzers know to send the key);
# the token itself is read by bearer_token, as the realtime socket reads it.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key of this router (`ASRPOOL_API_KEYS`), as `Authorization: Bearer <key>`.",
)


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

    async def __call__(
        self, request: Request, _declared: Annotated[Any, Security(_BEARER)] = None
    ) -> None:
        self.check(bearer_token(request.headers.get("authorization")))

    def dependencies(self) -> list[Any]:
        """The API routes' dependencies: the key check, or none when auth is off (so the
        document claims no security the router does not ask for)."""
        return [Security(self)] if self.enabled else []
