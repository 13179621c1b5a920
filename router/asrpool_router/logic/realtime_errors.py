"""The realtime protocol's ``error`` event, and the exception that becomes one.

A client event we cannot act on (bad JSON, an unknown event type, a session field we cannot
honour) is answered with an ``error`` event in OpenAI's shape; the socket stays open.
``param`` names the field as a dotted path (``session.audio.input.format.rate``) and
``event_id`` the client's event, so a client can tell which of its settings did not take.

Pure.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """A client event (or one field of it) we cannot act on; the session survives."""

    def __init__(
        self, code: str, message: str, *, param: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


def as_event(err: ProtocolError) -> dict[str, Any]:
    return error_event(err.code, err.message, param=err.param, event_id=err.event_id)
