"""TEST DOUBLE: a transcription backend that fails in one exact, chosen way.

The router must survive every way a pod can fail: an OOM in Xinference's words or
in ours, a gateway's text or HTML error page, a 200 that is not a transcript, a
body cut short, a reset after the upload, a pod that never answers or answers one
byte a second, a crash-looping pod. A real worker fails like that only by chance;
these faults must be exact and repeatable, so tests ask this double for them, and
run real workers beside it for the successes.

It speaks HTTP/1.1 on raw ``asyncio`` streams (no uvicorn) so that every byte and
every close is ours to choose: a small parser reads the request line, the headers
and the body (Content-Length or chunked) and keeps connections alive, as the
router's httpx pool expects. Endpoints::

    GET  /v1/models                       {"object": "list", "data": [{"id": MODEL, ...}]}
    GET  /readyz, /healthz                200, or /readyz 503 with --ready never
    GET  /hits                            transcription requests: total, by mode, bodies read
    POST /control                         JSON {"mode", "ready", "delay", "text", "reset_hits"}
    POST /v1/audio/transcriptions|translations   answered per mode (see ``Mode``)

Run: ``python -m tests.support.fault_backend --port P --mode MODE [--model tiny.en]
[--ready always|never] [--flap-period S] [--delay S] [--text "..."] [--host H]``.
Tests use ``fault_backend(tmp_path, mode)``, ``set_fault(url, ...)`` and ``hits(url)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import signal
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_form

from asrpool_contract import transcript_stream as stream_events
from asrpool_contract.wire import ERROR_CODE_HEADER, ERRORS, ErrorCode, error_body
from tests.support.procs import ServerProcess, free_port

log = logging.getLogger("fault_backend")


class Mode(StrEnum):
    """How the double answers a transcription (it reads the whole upload first in every mode)."""

    OK = "ok"  # a valid transcript after ``delay`` seconds, in the asked response_format
    OOM_XINFERENCE = "oom_xinference"  # 500 {"detail": XINFERENCE_OOM}
    OOM_JSON = "oom_json"  # 503 gpu_oom in OpenAI's shape, as our worker refuses when full
    ERROR_500_JSON = "error_500_json"  # 500 {"detail": "Internal Server Error"}
    ERROR_502_TEXT = "error_502_text"  # 502 text/plain, Envoy's words
    ERROR_503_TEXT = "error_503_text"  # 503 text/plain "no healthy upstream"
    ERROR_503_HTML = "error_503_html"  # 503 text/html, nginx's page
    ERROR_500_HTML = "error_500_html"  # 500 text/html, nginx's page
    OK_HTML = "ok_html"  # 200 text/html: a gateway's login page
    OK_EMPTY = "ok_empty"  # 200 application/json, empty body
    OK_NOT_JSON = "ok_not_json"  # 200 application/json, a body that is not JSON
    OK_WRONG_SHAPE = "ok_wrong_shape"  # 200 JSON without a "text" string
    # 200 text/event-stream: one delta whose end mark is no number, then nothing
    STREAM_BAD_MARK = "stream_bad_mark"
    OK_TRUNCATED = "ok_truncated"  # 200, Content-Length larger than the bytes sent, then FIN
    RESET_AFTER_UPLOAD = "reset_after_upload"  # reads the upload, then RST (SO_LINGER 0)
    HANG = "hang"  # reads the upload and never answers
    TRICKLE = "trickle"  # headers at once, then one body byte every ``delay`` seconds


DEFAULT_MODEL = "tiny.en"
DEFAULT_TEXT = "Hello from the fault backend."
# One cue of this length in verbose_json, srt and vtt.
TRANSCRIPT_DURATION_S = 1.0
TRICKLE_DEFAULT_DELAY_S = 1.0
# ok_truncated promises this many bytes more than it sends.
TRUNCATED_MISSING_BYTES = 100

XINFERENCE_OOM = (
    "Model actor is out of memory, model id: whisper-0, error: CUDA out of memory. "
    "Tried to allocate 1.34 GiB. GPU 0 has a total capacity of 23.57 GiB of which "
    "229.44 MiB is free."
)
INTERNAL_SERVER_ERROR_DETAIL = "Internal Server Error"
ENVOY_502_TEXT = (
    "upstream connect error or disconnect/reset before headers. "
    "reset reason: connection termination"
)
ENVOY_503_TEXT = "no healthy upstream"
NGINX_503_HTML = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
NGINX_500_HTML = (
    "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n"
    "<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
LOGIN_PAGE_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n"
    '<body><form method="post" action="/login"><h1>Sign in to continue</h1>\n'
    '<input name="username"><input name="password" type="password">\n'
    "<button>Sign in</button></form></body></html>\n"
)
# A Python repr, as a buggy backend prints a dict instead of dumping it.
NOT_JSON_BODY = "{'text': 'hello'}"
WRONG_SHAPE_KEY = "result"

# Bounds on everything a client can make us wait for or hold.
IDLE_TIMEOUT_S = 75.0  # a keep-alive connection with no new request (nginx's default)
HEAD_TIMEOUT_S = 30.0  # request line and headers, once the first byte came
BODY_TIMEOUT_S = 120.0
HANG_LIMIT_S = 3600.0  # hang holds a connection at most this long
MAX_LINE_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 256 * 1024 * 1024

TRANSCRIPTION_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
READY_CHOICES = ("always", "never")


@dataclass
class Fault:
    """What the double does now; ``POST /control`` changes it."""

    mode: Mode = Mode.OK
    ready: str = "always"
    delay: float | None = None  # None: 0 for ok, TRICKLE_DEFAULT_DELAY_S for trickle
    text: str = DEFAULT_TEXT

    def delay_for(self, mode: Mode) -> float:
        if self.delay is not None:
            return self.delay
        return TRICKLE_DEFAULT_DELAY_S if mode is Mode.TRICKLE else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "ready": self.ready,
            "delay": self.delay,
            "text": self.text,
        }


@dataclass
class Hits:
    total: int = 0
    by_mode: Counter[str] = field(default_factory=Counter)
    bodies_read: int = 0
    connections: int = 0  # accepted, so tests can see keep-alive reuse
    # The last upload's file part as it arrived: its name, size and first 64 bytes (hex).
    last_file: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_mode": dict(self.by_mode),
            "bodies_read": self.bodies_read,
            "connections": self.connections,
            "last_file": self.last_file,
        }


class BadRequest(Exception):
    """The client sent something this parser will not read; answer 400 and close."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps the last value
    keep_alive: bool


# --- HTTP/1.1 on streams --------------------------------------------------------------------


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise BadRequest("connection closed inside the request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("line too long") from exc
    return line.rstrip(b"\r\n")


async def read_head(reader: asyncio.StreamReader) -> Request | None:
    """The next request's line and headers, or None when the client closed or idled out."""
    try:
        async with asyncio.timeout(IDLE_TIMEOUT_S):
            first = await reader.readuntil(b"\n")
            if first.strip() == b"":  # RFC 9112 §2.2: ignore one empty line before a request
                first = await reader.readuntil(b"\n")
    except (TimeoutError, asyncio.IncompleteReadError):
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request line too long") from exc
    async with asyncio.timeout(HEAD_TIMEOUT_S):
        parts = first.rstrip(b"\r\n").decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"bad request line {first[:80]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = await _line(reader)
            if not line:
                break
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(f"bad header line {line[:80]!r}")
            headers[name.lower()] = value.strip()
        else:
            raise BadRequest("too many headers")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    return Request(method, target.split("?", 1)[0], headers, keep_alive)


async def read_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
) -> bytes:
    """The whole body, by chunked transfer encoding or Content-Length (none: empty)."""
    if request.headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            if "chunked" in request.headers.get("transfer-encoding", "").lower():
                return await _read_chunked(reader)
            length = request.headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise BadRequest(f"bad Content-Length {length!r}")
            return await reader.readexactly(int(length))
    except asyncio.IncompleteReadError as exc:
        raise BadRequest("connection closed inside the body") from exc
    except TimeoutError as exc:
        raise BadRequest("body too slow") from exc


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    # Each chunk adds at least one byte, so the size cap bounds the loop.
    while len(body) <= MAX_BODY_BYTES:
        size_field = (await _line(reader)).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError as exc:
            raise BadRequest(f"bad chunk size {size_field[:20]!r}") from exc
        if size == 0:
            for _ in range(MAX_HEADERS + 1):  # trailers, up to the empty line
                if not await _line(reader):
                    return bytes(body)
            raise BadRequest("too many trailers")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest("chunk not followed by CRLF")
    raise BadRequest("body too large")


def response_head(
    status: int,
    content_type: str | None,
    length: int,
    *,
    keep_alive: bool,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Server: asrpool-fault-backend"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in extra]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Answer:
    """A complete response: status, media type, body bytes, extra headers."""

    status: int
    content_type: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
        return cls(status, "application/json", json.dumps(body).encode(), headers)

    @classmethod
    def text(
        cls, status: int, body: str, content_type: str = "text/plain; charset=utf-8"
    ) -> Answer:
        return cls(status, content_type, body.encode())


async def send(writer: asyncio.StreamWriter, answer: Answer, *, keep_alive: bool) -> None:
    head = response_head(
        answer.status,
        answer.content_type,
        len(answer.body),
        keep_alive=keep_alive,
        extra=answer.headers,
    )
    writer.write(head + answer.body)
    await writer.drain()


# --- what each mode answers -----------------------------------------------------------------


def file_part(content_type: str, body: bytes) -> dict[str, Any] | None:
    """The form's file: its name, size and first 64 bytes in hex; None if there is none."""
    found: dict[str, Any] = {}

    def on_file(f: Any) -> None:
        f.file_object.seek(0)
        data = f.file_object.read()
        found.update(filename=(f.file_name or b"").decode(), size=len(data), head=data[:64].hex())
        f.close()

    if not content_type.lower().startswith("multipart/form-data"):
        return None
    headers = {"Content-Type": content_type.encode(), "Content-Length": str(len(body)).encode()}
    try:
        parse_form(headers, io.BytesIO(body), lambda f: None, on_file)
    except (FormParserError, ValueError):
        return None
    return found or None


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The form's non-file fields (enough to read ``response_format``); {} if unreadable."""
    fields: dict[str, str] = {}
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode("latin-1")))
    if not content_type.lower().startswith("multipart/form-data"):
        return fields

    def on_field(f: Any) -> None:
        if f.field_name is not None:
            fields[f.field_name.decode()] = (f.value or b"").decode(errors="replace")

    def on_file(f: Any) -> None:
        f.close()

    headers = {"Content-Type": content_type.encode(), "Content-Length": str(len(body)).encode()}
    try:
        parse_form(headers, io.BytesIO(body), on_field, on_file)
    except (FormParserError, ValueError) as exc:
        log.info("unreadable form: %s", exc)
    return fields


def _timestamp(seconds: float, decimal: str) -> str:
    minutes, ms = divmod(round(seconds * 1000), 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{ms // 1000:02d}{decimal}{ms % 1000:03d}"


def transcript(text: str, response_format: str, task: str) -> Answer:
    """A valid transcript of ``text`` as one cue, in OpenAI's ``response_format``."""
    end = TRANSCRIPT_DURATION_S
    if response_format == "json":
        return Answer.json(200, {"text": text})
    if response_format == "verbose_json":
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": end,
            "text": f" {text}",
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": 0.0,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        body = {
            "task": task,
            "language": "english",
            "duration": end,
            "text": text,
            "segments": [segment],
        }
        return Answer.json(200, body)
    if response_format == "text":
        return Answer.text(200, text + "\n")
    if response_format == "srt":
        cue = f"1\n{_timestamp(0, ',')} --> {_timestamp(end, ',')}\n{text}\n"
        return Answer.text(200, cue, "application/x-subrip; charset=utf-8")
    if response_format == "vtt":
        cue = f"WEBVTT\n\n{_timestamp(0, '.')} --> {_timestamp(end, '.')}\n{text}\n"
        return Answer.text(200, cue, "text/vtt; charset=utf-8")
    message = (
        f"response_format must be json, text, srt, vtt or verbose_json, not {response_format!r}."
    )
    return Answer.json(400, error_body(ErrorCode.INVALID_REQUEST, message, param="response_format"))


# Modes whose answer is one complete response, built from the fault's text alone.
FIXED_ANSWERS: dict[Mode, Callable[[str], Answer]] = {
    Mode.OOM_XINFERENCE: lambda _: Answer.json(500, {"detail": XINFERENCE_OOM}),
    Mode.OOM_JSON: lambda _: Answer.json(
        ERRORS[ErrorCode.GPU_OOM].status,
        error_body(ErrorCode.GPU_OOM),
        ((ERROR_CODE_HEADER, ErrorCode.GPU_OOM.value),),
    ),
    Mode.ERROR_500_JSON: lambda _: Answer.json(500, {"detail": INTERNAL_SERVER_ERROR_DETAIL}),
    Mode.ERROR_502_TEXT: lambda _: Answer.text(502, ENVOY_502_TEXT),
    Mode.ERROR_503_TEXT: lambda _: Answer.text(503, ENVOY_503_TEXT),
    Mode.ERROR_503_HTML: lambda _: Answer.text(503, NGINX_503_HTML, "text/html"),
    Mode.ERROR_500_HTML: lambda _: Answer.text(500, NGINX_500_HTML, "text/html"),
    Mode.OK_HTML: lambda _: Answer.text(200, LOGIN_PAGE_HTML, "text/html; charset=utf-8"),
    Mode.OK_EMPTY: lambda _: Answer(200, "application/json", b""),
    Mode.OK_NOT_JSON: lambda _: Answer(200, "application/json", NOT_JSON_BODY.encode()),
    Mode.OK_WRONG_SHAPE: lambda text: Answer.json(200, {WRONG_SHAPE_KEY: text}),
    Mode.STREAM_BAD_MARK: lambda text: Answer(
        200,
        stream_events.MEDIA_TYPE,
        b"data: "
        + json.dumps(
            {"type": stream_events.DELTA, "delta": text, stream_events.END_MARK: "soon"}
        ).encode()
        + b"\n\n",
    ),
}


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with RST, not FIN: SO_LINGER 0 makes the kernel drop the connection at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _wait_for_client_to_leave(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(HANG_LIMIT_S):
            while await reader.read(64 * 1024):  # bytes after the request are ignored
                pass


async def _trickle(
    writer: asyncio.StreamWriter, body: bytes, delay: float, keep_alive: bool
) -> None:
    writer.write(response_head(200, "application/json", len(body), keep_alive=keep_alive))
    await writer.drain()
    for i in range(len(body)):
        await asyncio.sleep(delay)
        writer.write(body[i : i + 1])
        await writer.drain()


# --- the server -----------------------------------------------------------------------------


class FaultBackend:
    """One listening socket (closed and reopened when flapping) and its connections."""

    def __init__(
        self, host: str, port: int, model: str, fault: Fault, flap_period: float | None = None
    ):
        self.host, self.port, self.model = host, port, model
        self.fault = fault
        self.flap_period = flap_period
        self.hits = Hits()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until ``stop()``; then close everything and return."""
        await self._listen()
        if self.flap_period:
            await self._flap(self.flap_period)
        else:
            await self._stop.wait()
        await self._go_down()

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        return self._stop.is_set()

    async def _flap(self, period: float) -> None:
        # Checks for stop() between phases instead of being cancelled: Python 3.11 can lose
        # a cancellation that lands while a wait_for finishes, and the pod would never exit.
        while not await self._stopped_within(period):
            await self._go_down()
            if await self._stopped_within(period):
                return
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=MAX_LINE_BYTES
        )
        log.info("listening on %s:%d", self.host, self.port)

    async def _go_down(self) -> None:
        """Close the listening socket and cut every open connection, as a crashed pod does."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections.values()):
            writer.transport.abort()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await server.wait_closed()
        log.info("not listening")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        self.hits.connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except BadRequest as exc:
            log.info("bad request: %s", exc)
            with contextlib.suppress(ConnectionError):
                await send(writer, Answer.text(400, f"{exc}\n"), keep_alive=False)
        except (ConnectionError, TimeoutError) as exc:
            log.info("connection ended: %r", exc)
        except asyncio.CancelledError:
            # Only _go_down cancels a connection, and waits for it; ending normally keeps
            # asyncio's start_server from logging the cancelled handler as an error.
            log.info("connection cut")
        finally:
            self._connections.pop(task, None)
            writer.transport.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; True when the connection stays open for the next."""
        request = await read_head(reader)
        if request is None:
            return False
        if request.path in TRANSCRIPTION_PATHS and request.method == "POST":
            return await self._transcription(reader, writer, request)
        body = await read_body(reader, writer, request)
        await send(writer, self._route(request, body), keep_alive=request.keep_alive)
        return request.keep_alive

    def _route(self, request: Request, body: bytes) -> Answer:
        routes: dict[str, tuple[str, Callable[[bytes], Answer]]] = {
            "/v1/models": ("GET", lambda _: self._models()),
            "/readyz": ("GET", lambda _: self._readyz()),
            "/healthz": ("GET", lambda _: Answer.json(200, {"status": "alive"})),
            "/hits": ("GET", lambda _: Answer.json(200, self.hits.as_json())),
            "/control": ("POST", self._control),
        }
        if request.path in TRANSCRIPTION_PATHS:  # POSTs to them never come here
            return Answer.json(405, {"detail": "Method Not Allowed"})
        if request.path not in routes:
            return Answer.json(404, {"detail": "Not Found"})
        method, handler = routes[request.path]
        if request.method != method:
            return Answer.json(405, {"detail": "Method Not Allowed"})
        return handler(body)

    def _models(self) -> Answer:
        return Answer.json(200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def _readyz(self) -> Answer:
        if self.fault.ready == "always":
            return Answer.json(200, {"status": "ready"})
        return Answer.json(503, {"status": "not_ready"})

    def _control(self, body: bytes) -> Answer:
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            unknown = set(changes) - {"mode", "ready", "delay", "text", "reset_hits"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            fault = dataclasses.replace(self.fault)
            if "mode" in changes:
                fault.mode = Mode(changes["mode"])
            if "ready" in changes:
                if changes["ready"] not in READY_CHOICES:
                    raise ValueError(f"ready must be one of {READY_CHOICES}")
                fault.ready = changes["ready"]
            if "delay" in changes:
                delay = changes["delay"]
                if delay is not None and (type(delay) not in (int, float) or delay < 0):
                    raise ValueError("delay must be a number >= 0, or null")
                fault.delay = None if delay is None else float(delay)
            if "text" in changes:
                if not isinstance(changes["text"], str):
                    raise ValueError("text must be a string")
                fault.text = changes["text"]
        except ValueError as exc:  # JSONDecodeError and a bad Mode are ValueErrors too
            return Answer.json(400, {"detail": str(exc)})
        self.fault = fault
        if changes.get("reset_hits"):
            connections = self.hits.connections
            self.hits = Hits(connections=connections)
        log.info("control: %s", fault.as_json())
        return Answer.json(200, fault.as_json())

    async def _transcription(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
    ) -> bool:
        fault = self.fault  # the mode when the request arrived holds for all of it
        mode = fault.mode
        self.hits.total += 1
        self.hits.by_mode[mode.value] += 1
        body = await read_body(reader, writer, request)
        self.hits.bodies_read += 1
        self.hits.last_file = file_part(request.headers.get("content-type", ""), body)
        log.info("%s %s: %d bytes, mode %s", request.method, request.path, len(body), mode)
        keep_alive = request.keep_alive
        if mode is Mode.OK:
            await asyncio.sleep(fault.delay_for(mode))
            fields = form_fields(request.headers.get("content-type", ""), body)
            task = "translate" if request.path.endswith("translations") else "transcribe"
            answer = transcript(fault.text, fields.get("response_format", "json"), task)
            await send(writer, answer, keep_alive=keep_alive)
            return keep_alive
        if mode in FIXED_ANSWERS:
            await send(writer, FIXED_ANSWERS[mode](fault.text), keep_alive=keep_alive)
            return keep_alive
        if mode is Mode.OK_TRUNCATED:
            sent = json.dumps({"text": fault.text}).encode()
            length = len(sent) + TRUNCATED_MISSING_BYTES
            writer.write(response_head(200, "application/json", length, keep_alive=True) + sent)
            await writer.drain()
            return False  # closed with FIN by _connection, the promised bytes never sent
        if mode is Mode.RESET_AFTER_UPLOAD:
            _reset(writer)
            return False
        if mode is Mode.HANG:
            await _wait_for_client_to_leave(reader)
            return False
        if mode is Mode.TRICKLE:
            sent = json.dumps({"text": fault.text}).encode()
            await _trickle(writer, sent, fault.delay_for(mode), keep_alive)
            return keep_alive
        raise AssertionError(f"mode {mode} has no answer")


# --- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.support.fault_backend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1, or a network namespace's IP")
    p.add_argument("--mode", type=Mode, choices=list(Mode), default=Mode.OK)
    p.add_argument("--model", default=DEFAULT_MODEL, help="the id GET /v1/models lists")
    p.add_argument("--ready", choices=READY_CHOICES, default="always")
    p.add_argument(
        "--flap-period", type=float, default=None, help="S seconds listening, S seconds refusing"
    )
    p.add_argument(
        "--delay", type=float, default=None, help="ok: before answering (0); trickle: per byte (1)"
    )
    p.add_argument("--text", default=DEFAULT_TEXT)
    args = p.parse_args(argv)
    if args.flap_period is not None and args.flap_period <= 0:
        p.error("--flap-period must be > 0")
    if args.delay is not None and args.delay < 0:
        p.error("--delay must be >= 0")
    return args


async def serve(args: argparse.Namespace) -> None:
    fault = Fault(mode=args.mode, ready=args.ready, delay=args.delay, text=args.text)
    backend = FaultBackend(args.host, args.port, args.model, fault, args.flap_period)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, backend.stop)
    await backend.run()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(parse_args(argv)))


# --- for tests ------------------------------------------------------------------------------


@contextlib.contextmanager
def fault_backend(
    tmp_path: Path,
    mode: str = Mode.OK,
    *,
    model: str | None = None,
    ready: str | None = None,
    flap_period: float | None = None,
    delay: float | None = None,
    text: str | None = None,
    host: str = "127.0.0.1",
    prefix: list[str] | None = None,
    name: str | None = None,
    timeout: float = 15.0,
) -> Iterator[ServerProcess]:
    """A running fault backend (``prefix``: e.g. ``ip netns exec NS``); stopped on exit."""
    port = free_port()
    args = ["--port", str(port), "--host", host, "--mode", str(Mode(mode))]
    options = {"model": model, "ready": ready, "flap-period": flap_period, "delay": delay}
    args += [
        arg
        for key, value in options.items()
        if value is not None
        for arg in (f"--{key}", str(value))
    ]
    if text is not None:
        args += ["--text", text]
    log_path = tmp_path / f"{name or f'fault-{mode}-{port}'}.log"
    proc = ServerProcess(
        args, port, log_path, module="tests.support.fault_backend", prefix=prefix, host=host
    )
    try:
        proc.wait_ready(timeout=timeout, path="/v1/models")
        yield proc
    finally:
        proc.stop()


def set_fault(url: str, **changes: Any) -> dict[str, Any]:
    """Change a running double's mode, ready, delay, text (or ``reset_hits=True``)."""
    response = httpx.post(f"{url}/control", json=changes, timeout=5)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def hits(url: str, within_s: float = 10.0) -> dict[str, Any]:
    """``{"total", "by_mode", "bodies_read", "connections"}`` of a running double.

    A flapping double refuses connections half the time: asked then, wait until it is up.
    """
    deadline = time.monotonic() + within_s
    while True:
        try:
            response = httpx.get(f"{url}/hits", timeout=5)
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


if __name__ == "__main__":
    main()
