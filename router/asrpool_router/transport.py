"""Send one attempt to one pod over HTTP, and say what happened as plain data.

The only place the router talks to pods (``PodTransport``: attempts and health checks).
aiohttp's exceptions are mapped once, here, into the transport-error vocabulary of
``logic.errors.AttemptResult``; the answer's bytes come back whole (transcripts are
small; past ``MAX_ANSWER_BYTES`` the answer is not one) so the caller can check, relay
or classify them, and the load the pod reports rides along (``logic.pod_load``).

Why aiohttp and not httpx (which the rest of the project uses): on the hot path, with
64 requests in flight to one pod, httpx's connection pool spent most of the router's
time scanning its connections (``_assign_requests_to_connections``, ``has_expired``) and
served ~500 requests/s from a client loop where aiohttp served ~14,000 on the same
machine (``bench/README.md``). The multipart body is built here, not by the client
library: httpx's encoder asked the spooled upload for its ``fileno()``, which forces a
small in-memory upload out to a temporary file on every attempt.

An attempt has one deadline for the whole exchange (``asyncio.timeout``): per-read
timeouts alone let a pod that sends its headers and then trickles a byte a second hold
the request for ever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from asrpool_contract import transcript_stream as stream_events
from asrpool_contract.wire import ERROR_CODE_HEADER, IN_FLIGHT_HEADER, SLOTS_HEADER

from .logic.errors import AttemptResult
from .logic.pod_load import PodLoad

log = logging.getLogger(__name__)

# A transcript of the longest upload, with word timestamps, is a few MB.
MAX_ANSWER_BYTES = 32 * 2**20
# Uploads up to this size are sent as one buffer; larger ones stream from their spool file.
_IN_ONE_PIECE = 2**20
_CHUNK = 256 * 1024


@dataclass
class BufferedUpload:
    """The client's upload, held (in memory, or spilled to disk by the form parser) for retries."""

    filename: str
    content_type: str
    file: IO[bytes]
    size: int
    fields: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    result: AttemptResult
    status: int = 0
    content: bytes = b""
    content_type: str = "application/json"


class MultipartBody:
    """``multipart/form-data`` of the fields and the file, as every attempt sends it again."""

    def __init__(self, upload: BufferedUpload) -> None:
        self.boundary = secrets.token_hex(16)
        parts = [
            self._part_head(f'name="{_quote(name)}"') + value.encode() + b"\r\n"
            for name, value in upload.fields
        ]
        disposition = f'name="file"; filename="{_quote(upload.filename)}"'
        parts.append(self._part_head(disposition, upload.content_type))
        self.head = b"".join(parts)
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.file = upload.file
        self.file.seek(0, 2)
        self.file_size = self.file.tell()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        return len(self.head) + self.file_size + len(self.tail)

    def data(self) -> bytes | AsyncIterator[bytes]:
        """The body for one attempt: one buffer when small, else chunks from the spool."""
        self.file.seek(0)
        if self.file_size <= _IN_ONE_PIECE:
            return self.head + self.file.read() + self.tail
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield self.head
        while chunk := self.file.read(_CHUNK):
            yield chunk
        yield self.tail

    def _part_head(self, disposition: str, content_type: str | None = None) -> bytes:
        head = f"--{self.boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        return (head + "\r\n").encode()


def _quote(value: str) -> str:
    # RFC 7578 §4.2, as browsers do it: the quote and line breaks percent-encoded.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class _AnswerTooLarge(Exception):
    pass


class PodTransport:
    """One connection pool to every pod, kept alive and reused; opened on ``start``."""

    def __init__(self, keepalive_s: float = 4.0, headers: dict[str, str] | None = None) -> None:
        # Idle connections are dropped before the 5 s keep-alive of uvicorn-based servers
        # (ours keeps them longer): reusing one the server is closing fails the attempt.
        self.keepalive_s = keepalive_s
        self.headers = dict(headers or {})  # sent with every request (the worker token)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # per-pod budgets bound the connections, not the pool
                keepalive_timeout=self.keepalive_s,
                enable_cleanup_closed=True,
            )
            # Bodies are relayed as the pod sent them; cookies mean nothing between pods.
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                headers=self.headers,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("PodTransport.start() was not called")
        return self._session

    async def send(
        self, base_url: str, path: str, upload: BufferedUpload, timeout_s: float
    ) -> Answer:
        """One attempt: the upload to ``base_url + path``, the answer or what went wrong."""
        body = MultipartBody(upload)
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session.post(
                    base_url.rstrip("/") + path,
                    data=body.data(),
                    headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
                    timeout=aiohttp.ClientTimeout(connect=min(5.0, timeout_s)),
                ) as resp:
                    content = await _read_capped(resp)
                    status, headers = resp.status, resp.headers
        except TimeoutError:
            log.warning("attempt on %s: no whole answer within %.0fs", base_url, timeout_s)
            return Answer(AttemptResult(transport_error="deadline_timeout"))
        except _AnswerTooLarge:
            log.warning("attempt on %s: answer larger than %d bytes", base_url, MAX_ANSWER_BYTES)
            return Answer(AttemptResult(transport_error="answer_too_large"))
        except aiohttp.ClientError as exc:
            return _failed(base_url, exc)
        return _answer(base_url, status, headers, content)

    async def stream(
        self, base_url: str, path: str, upload: BufferedUpload
    ) -> AsyncGenerator[dict[str, Any] | Answer, None]:
        """A ``stream=true`` attempt: the pod's events as they come.

        Ends with an ``Answer`` instead when the pod did not answer with an event stream
        (an error, a 2xx that is not one) or the connection failed, before or during the
        stream. The caller bounds the whole attempt in time and closes the iterator.
        """
        body = MultipartBody(upload)
        try:
            async with self.session.post(
                base_url.rstrip("/") + path,
                data=body.data(),
                headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
                timeout=aiohttp.ClientTimeout(connect=5.0),
            ) as resp:
                if resp.status != 200 or resp.content_type != stream_events.MEDIA_TYPE:
                    content = await _read_capped(resp)
                    yield _answer(base_url, resp.status, resp.headers, content)
                    return
                reader = stream_events.EventReader()
                async for chunk in resp.content.iter_any():
                    for event in reader.feed(chunk):
                        yield event
        except _AnswerTooLarge:
            yield Answer(AttemptResult(transport_error="answer_too_large"))
        except aiohttp.ClientError as exc:
            yield _failed(base_url, exc)

    async def get_json(self, url: str, timeout_s: float = 3.0) -> tuple[int, object]:
        """Status and JSON body of a GET (0 and None when the pod cannot be reached)."""
        try:
            async with asyncio.timeout(timeout_s), self.session.get(url) as resp:
                status, content = resp.status, await _read_capped(resp)
        except (TimeoutError, _AnswerTooLarge, aiohttp.ClientError):
            return 0, None
        try:
            return status, json.loads(content)
        except ValueError:
            return status, None


def _failed(base_url: str, exc: aiohttp.ClientError) -> Answer:
    kind = _transport_error(exc)
    log.warning("attempt on %s failed: %s (%s)", base_url, kind, type(exc).__name__)
    return Answer(AttemptResult(transport_error=kind))


def _answer(base_url: str, status: int, headers: Mapping[str, str], content: bytes) -> Answer:
    content_type = headers.get("Content-Type", "")
    failed = status >= 400
    text = content.decode("utf-8", errors="replace") if failed else ""
    if failed:
        log.info("pod %s answered %d: %s", base_url, status, text[:500])
    return Answer(
        AttemptResult(
            status=status,
            error_code_header=headers.get(ERROR_CODE_HEADER),
            body_text=text,
            content_type=content_type,
            body=b"" if failed else content,
            load=PodLoad.parse(headers.get(SLOTS_HEADER), headers.get(IN_FLIGHT_HEADER)),
        ),
        status=status,
        content=content,
        content_type=content_type or "application/json",
    )


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length > MAX_ANSWER_BYTES:
        raise _AnswerTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _AnswerTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _transport_error(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect_timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "read_timeout"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "closed"  # the pod died mid-answer, or cut its answer short
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset"
    return "protocol"
