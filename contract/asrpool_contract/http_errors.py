"""Render every error of a FastAPI app in OpenAI's shape, once, for router and worker alike.

``install_error_handlers(app)`` maps ``AsrpoolError``, unknown routes, wrong
methods and unexpected exceptions to ``asrpool_contract.wire.error_body``. The message
follows ``Accept-Language`` (zh → 简体中文) unless the error carries its own.
Every error answer carries its code in ``x-asrpool-error-code``; a code whose catalogue
entry says so (``queue_full``) carries ``Retry-After``; a 405 carries ``Allow`` (RFC 9110),
with ``HEAD`` wherever ``GET`` is allowed (``asrpool_contract.http_server.HeadAsGet`` serves it).
The OpenAPI document (``asrpool_contract.openapi``) describes these answers from the same catalogue.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .wire import (
    ERROR_CODE_HEADER,
    ERRORS,
    AsrpoolError,
    ErrorCode,
    error_body,
    wants_chinese,
)

log = logging.getLogger(__name__)

# What a client turned away without an estimate should wait, and the most we ever say.
_DEFAULT_RETRY_AFTER_S = 1
_MAX_RETRY_AFTER_S = 24 * 3600


def retry_after_value(seconds: float | None) -> str:
    """A Retry-After header value (RFC 9110 delay-seconds): a whole number of seconds, at
    least 1, for any estimate, even a missing, negative or non-finite one."""
    if seconds is None or not math.isfinite(seconds):
        return str(_DEFAULT_RETRY_AFTER_S)
    return str(min(_MAX_RETRY_AFTER_S, max(1, math.ceil(seconds))))


def allow_value(methods: str) -> str:
    """The ``Allow`` header for a route's methods: sorted, with HEAD where GET is."""
    allowed = {m.strip().upper() for m in methods.split(",") if m.strip()}
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def error_response(
    request: Request | None,
    code: ErrorCode,
    message: str | None = None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> JSONResponse:
    chinese = request is not None and wants_chinese(request.headers.get("accept-language"))
    body = error_body(code, message, param=param, chinese=chinese)
    return JSONResponse(
        body,
        status_code=status or ERRORS[code].status,
        headers={ERROR_CODE_HEADER: code.value, **(headers or {})},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AsrpoolError)
    async def _asrpool(request: Request, exc: AsrpoolError) -> JSONResponse:
        headers = None
        if ERRORS[exc.code].retry_after or exc.retry_after_s is not None:
            headers = {"Retry-After": retry_after_value(exc.retry_after_s)}
        return error_response(request, exc.code, exc.message, param=exc.param, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(request, ErrorCode.NOT_FOUND, f"No route {request.url.path}.")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allow_value(headers.get("Allow", ""))
            message = f"Method {request.method} is not allowed here; use {headers['Allow']}."
        else:
            message = str(exc.detail)
        return error_response(
            request, ErrorCode.INVALID_REQUEST, message, headers=headers, status=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
        return error_response(
            request,
            ErrorCode.INVALID_REQUEST,
            str(first.get("msg", "Invalid request.")),
            param=param,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request, ErrorCode.INTERNAL_ERROR)
