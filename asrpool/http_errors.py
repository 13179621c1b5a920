"""Render every error of a FastAPI app in OpenAI's shape, once, for router and worker alike.

``install_error_handlers(app)`` maps ``AsrpoolError``, unknown routes, wrong
methods and unexpected exceptions to ``asrpool.wire.error_body``. The message
follows ``Accept-Language`` (zh → 简体中文) unless the error carries its own.
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


def error_response(
    request: Request | None,
    code: ErrorCode,
    message: str | None = None,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    chinese = request is not None and wants_chinese(request.headers.get("accept-language"))
    body = error_body(code, message, param=param, chinese=chinese)

    return JSONResponse(
        body,
        status_code=ERRORS[code].status,
        headers={ERROR_CODE_HEADER: code.value, **(headers or {})},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AsrpoolError)
    async def _asrpool(request: Request, exc: AsrpoolError) -> JSONResponse:
        headers = None
        if exc.retry_after_s is not None:
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
        return error_response(request, exc.code, exc.message, param=exc.param, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(request, ErrorCode.NOT_FOUND, f"No route {request.url.path}.")
        if exc.status_code == 405:
            return JSONResponse(
                error_body(
                    ErrorCode.INVALID_REQUEST, f"Method {request.method} is not allowed here."
                ),
                status_code=405,
            )
        return JSONResponse(
            error_body(ErrorCode.INVALID_REQUEST, str(exc.detail)), status_code=exc.status_code
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
