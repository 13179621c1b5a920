"""Send one attempt to one pod over HTTP, and say what happened as plain data.

The only place the router talks to workers. httpx exceptions are mapped once,
here, into the transport-error vocabulary of ``logic.errors.AttemptResult``; the
answer's bytes come back whole (transcripts are small; past ``MAX_ANSWER_BYTES`` the
answer is not one) so the caller can check, relay or classify them.

An attempt has one deadline for the whole exchange: httpx's timeouts bound each read,
so a pod that sends its headers and then trickles a byte a second would otherwise hold
the request for ever.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import IO

import httpx

from .logic.errors import AttemptResult

log = logging.getLogger(__name__)


@dataclass
class BufferedUpload:
    """The client's upload, held (in memory, or spilled to disk by the form parser) for retries."""

    filename: str
    content_type: str
    file: IO[bytes]
    size: int
    fields: list[tuple[str, str]] = field(default_factory=list)

    def files(self) -> dict[str, tuple[str, IO[bytes], str]]:
        self.file.seek(0)  # every attempt sends the whole upload again
        return {"file": (self.filename, self.file, self.content_type)}


@dataclass(frozen=True)
class Answer:
    result: AttemptResult
    status: int = 0
    content: bytes = b""
    content_type: str = "application/json"


def _transport_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, httpx.WriteTimeout):
        return "write_timeout"
    if isinstance(exc, httpx.PoolTimeout):
        return "pool_timeout"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "closed"  # the pod died mid-answer
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "reset"
    return "protocol"


# A transcript of the longest upload, with word timestamps, is a few MB.
MAX_ANSWER_BYTES = 32 * 2**20


class _AnswerTooLarge(Exception):
    pass


async def send(
    client: httpx.AsyncClient, base_url: str, path: str, upload: BufferedUpload, timeout_s: float
) -> Answer:
    request = client.build_request(
        "POST",
        base_url.rstrip("/") + path,
        files=upload.files(),
        data=_form(upload.fields),
        timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
    )
    try:
        async with asyncio.timeout(timeout_s):
            resp = await client.send(request, stream=True)
            try:
                content = await _read_capped(resp)
            finally:
                await resp.aclose()
    except TimeoutError:
        log.warning("attempt on %s: no whole answer within %.0fs", base_url, timeout_s)
        return Answer(AttemptResult(transport_error="deadline_timeout"))
    except _AnswerTooLarge:
        log.warning("attempt on %s: answer larger than %d bytes", base_url, MAX_ANSWER_BYTES)
        return Answer(AttemptResult(transport_error="answer_too_large"))
    except httpx.HTTPError as exc:
        kind = _transport_error(exc)
        log.warning("attempt on %s failed: %s (%s)", base_url, kind, type(exc).__name__)
        return Answer(AttemptResult(transport_error=kind))
    content_type = resp.headers.get("content-type", "")
    failed = resp.status_code >= 400
    text = content.decode(resp.encoding or "utf-8", errors="replace") if failed else ""
    if failed:
        log.info("pod %s answered %d: %s", base_url, resp.status_code, text[:500])
    return Answer(
        AttemptResult(
            status=resp.status_code,
            error_code_header=resp.headers.get("x-asrpool-error-code"),
            body_text=text,
            content_type=content_type,
            body=b"" if failed else content,
        ),
        status=resp.status_code,
        content=content,
        content_type=content_type or "application/json",
    )


async def _read_capped(resp: httpx.Response) -> bytes:
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise _AnswerTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _AnswerTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _form(fields: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {}
    for name, value in fields:
        if name in form:
            prev = form[name]
            form[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            form[name] = value
    return form


async def get_json(
    client: httpx.AsyncClient, url: str, timeout_s: float = 3.0
) -> tuple[int, object]:
    """Status and JSON body of a GET (0 and None when the pod cannot be reached)."""
    try:
        resp = await client.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return 0, None
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None
