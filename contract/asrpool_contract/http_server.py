"""The HTTP server the router and the worker both run: uvicorn, guarded against slow clients.

uvicorn bounds only idle keep-alive connections; a client that opens a connection and
sends its headers a byte at a time (slowloris), or stops in the middle of an upload, would
hold a connection (and, for an upload, a spool file) for ever. Two guards, one each::

    connection ──headers──▶ HeaderTimeoutProtocol   timer from the connection's start (and
                                                    from the first byte of each later request)
                                                    to the end of the headers: 408, closed
               ──body────▶ BodyGuard (ASGI)         each wait for body bytes is bounded:
                                                    receive() raises AsrpoolError
                                                    request_timeout, the app answers 408

``BodyGuard`` also adds ``Connection: close`` to an answer sent before the request's body
was read whole (413, 429, 408, 401 on an upload), so uvicorn closes the connection instead
of reading and discarding the rest of an upload for as long as the client keeps sending.

``serve_http(app, host=…, port=…, timeouts=…, …)`` is what ``asrpool_router.server`` and
``asrpool_worker.server`` call. The protocol subclasses uvicorn's httptools protocol, the
one ``uvicorn[standard]`` (our dependency) runs by default.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .wire import ERROR_CODE_HEADER, AsrpoolError, ErrorCode, error_body


@dataclass(frozen=True)
class ServerTimeouts:
    """Seconds a client may take; 0 turns a guard off."""

    header_s: float = 10.0  # from connection (or request) start to the end of the headers
    body_s: float = 30.0  # longest wait for the next bytes of a request body


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    header_timeout_s: float = ServerTimeouts.header_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that never sends a byte is closed too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # the first byte of a later request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self.header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request is dribbling in while the one before it runs: let that
            # one finish its answer, then close the connection.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self.logger.info(
            "%s: request headers not complete within %gs; connection closed",
            self.client,
            self.header_timeout_s,
        )
        self.transport.write(_header_timeout_response(self.header_timeout_s))
        self.transport.close()


def http_protocol(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for ``uvicorn.run(http=…)`` with this header deadline."""

    class Configured(HeaderTimeoutProtocol):
        pass

    Configured.header_timeout_s = header_timeout_s
    return Configured


def _header_timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        error_body(
            ErrorCode.REQUEST_TIMEOUT,
            f"The request headers did not arrive within {seconds:g} s and the connection "
            "was closed. Check the connection and send the request again.",
        )
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"{ERROR_CODE_HEADER}: {ErrorCode.REQUEST_TIMEOUT.value}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def body_timeout(seconds: float) -> AsrpoolError:
    return AsrpoolError(
        ErrorCode.REQUEST_TIMEOUT,
        f"No upload data arrived for {seconds:g} s, so the upload was stopped. "
        "Check the connection and send it again.",
    )


class BodyGuard:
    """ASGI middleware: bounded waits for body bytes, and no reading on after an early answer."""

    def __init__(self, app: ASGIApp, body_timeout_s: float) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_pending = _declares_body(scope)

        async def guarded_receive() -> Message:
            nonlocal body_pending
            if not body_pending or self.body_timeout_s <= 0:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout(self.body_timeout_s):
                        message = await receive()
                except TimeoutError:
                    raise body_timeout(self.body_timeout_s) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and body_pending:
                # Answered before the body was read whole: uvicorn would otherwise keep
                # the connection and discard the rest of the upload for as long as it comes.
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)


def _declares_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    if b"transfer-encoding" in headers:
        return True
    return headers.get(b"content-length", b"").strip() not in (b"", b"0")


class HeadAsGet:
    """ASGI middleware: HEAD is served as GET (RFC 9110 §9.3.2), on every route that has GET.

    The app sees a GET; the answer keeps the GET's headers, Content-Length included, and
    loses its body. FastAPI registers routes for the methods they name only, so without
    this a HEAD where GET exists would be 405 (and ``Allow`` says HEAD wherever GET is).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


# Probes and scrapes come every few seconds from kubelets, routers and Prometheus: an access
# log line for each would bury the one line per real request.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v1/models"})


class QuietProbes(logging.Filter):
    """Drops uvicorn's access log records of probe paths (their args: client, method, path…)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            return args[2].split("?", 1)[0] not in PROBE_PATHS
        return True


def serve_http(
    app: ASGIApp, *, host: str, port: int, timeouts: ServerTimeouts, **uvicorn_options: Any
) -> None:
    """Run ``app`` under uvicorn with both guards; ``uvicorn_options`` go to ``uvicorn.run``.

    Logging is the command line's (``--log-level``, one format for all our loggers), not
    uvicorn's own configuration: at INFO one access line per request, probes left out.
    """
    logging.getLogger("uvicorn.access").addFilter(QuietProbes())
    uvicorn.run(
        BodyGuard(app, timeouts.body_s),
        host=host,
        port=port,
        http=http_protocol(timeouts.header_s),
        log_config=None,
        **uvicorn_options,
    )


class Once:
    """Something to give back exactly once, from whichever path ends first."""

    def __init__(self, give_back: Callable[[], None]) -> None:
        self._give_back: Callable[[], None] | None = give_back

    def __call__(self) -> None:
        give_back, self._give_back = self._give_back, None
        if give_back is not None:
            give_back()


class OwnedStream(StreamingResponse):
    """A streamed answer that gives back what it holds (slots, uploads) when it ends.

    The body's own ``finally`` is not enough: when the client is gone before the body
    starts, Starlette never iterates it, and a never-started generator runs no ``finally``.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        media_type: str,
        on_close: list[Callable[[], Awaitable[None] | None]],
    ) -> None:
        super().__init__(body, media_type=media_type)
        self.on_close = on_close
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._body, "aclose", None)
            if aclose is not None:
                await aclose()
            for give_back in self.on_close:
                result = give_back()
                if inspect.isawaitable(result):
                    await result
