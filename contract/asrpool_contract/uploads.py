"""Read an OpenAI audio upload (multipart ``file`` + fields), for the router and the worker alike.

Refuses, in OpenAI's error shape, what is not a multipart form, a form without its
``file`` part, and an upload over the size limit. The limit holds whether or not the
client declared a Content-Length: a declared length over it is refused before a byte is
read, and the body is counted as it streams into Starlette's multipart parser, which is
stopped with 413 ``file_too_large`` the moment the count passes the limit (so an upload
sent chunked is never spooled in full first). File parts past 1 MiB are spooled to disk;
the parser closes its spool files on every error, and ``read_audio_form`` closes the form
when it refuses one.

A caller that holds uploads for long (the router, across queueing and retries) passes a
``SpoolHold``: the bytes are taken from it as they arrive (the declared length at once),
and an upload that does not fit is refused with 429 ``queue_full``. The caller releases
the hold when it is done with the upload, on every path.

Slow clients are bounded below us: ``asrpool_contract.http_server.BodyGuard`` makes ``receive()``
raise ``request_timeout`` when body bytes stop coming, and that error passes through here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Protocol

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser

from .wire import AsrpoolError, ErrorCode

# Room for the other form fields and the multipart framing around the file.
_FORM_OVERHEAD = 64 * 1024


class SpoolHold(Protocol):
    """A request's share of a budget for held uploads (``asrpool_router.logic.upload_budget``)."""

    @property
    def retry_after_s(self) -> float: ...

    def take(self, n: int) -> bool:
        """Hold ``n`` more bytes, or False when the budget has no room."""
        ...


def too_large(max_bytes: int) -> AsrpoolError:
    return AsrpoolError(
        ErrorCode.FILE_TOO_LARGE,
        f"The audio file is larger than {max_bytes / 2**20:g} MB. "
        "Send a shorter recording or split it into parts.",
        param="file",
    )


def spool_full(retry_after_s: float) -> AsrpoolError:
    return AsrpoolError(
        ErrorCode.QUEUE_FULL,
        "The server is holding too many uploads right now. "
        "Retry after the time in the Retry-After header.",
        param="file",
        retry_after_s=retry_after_s,
    )


def _not_multipart() -> AsrpoolError:
    return AsrpoolError(
        ErrorCode.INVALID_REQUEST,
        "Send the audio as multipart/form-data with a 'file' field.",
        param="file",
    )


async def read_audio_form(
    request: Request, max_bytes: int, *, hold: SpoolHold | None = None
) -> tuple[FormData, UploadFile]:
    """The form and its file part; the caller closes the form when done with the file."""
    limit = max_bytes + _FORM_OVERHEAD
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(max_bytes)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise _not_multipart()
    counter = _BodyCounter(max_bytes, limit, hold)
    if declared is not None:
        counter.hold_up_to(declared)  # a request that cannot fit is refused before reading
    parser = MultiPartParser(
        request.headers, counter.count(request.stream()), max_files=1, max_fields=32
    )
    try:
        form = await parser.parse()
    except AsrpoolError:  # too large, no room in the budget, too slow (BodyGuard)
        raise
    except Exception as exc:  # the parser's errors: malformed, too many parts; a disconnect
        raise _not_multipart() from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise AsrpoolError(
            ErrorCode.INVALID_REQUEST, "The 'file' field with the audio is missing.", param="file"
        )
    if upload.size is not None and upload.size > max_bytes:
        await form.close()
        raise too_large(max_bytes)
    return form, upload


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        return None  # the server would have refused it; count the bytes instead


class _BodyCounter:
    """Counts the body as it streams, against the size limit and the caller's hold."""

    def __init__(self, max_bytes: int, limit: int, hold: SpoolHold | None) -> None:
        self.max_bytes = max_bytes
        self.limit = limit
        self.hold = hold
        self.seen = 0
        self.held = 0

    def hold_up_to(self, total: int) -> None:
        if self.hold is None or total <= self.held:
            return
        if not self.hold.take(total - self.held):
            raise spool_full(self.hold.retry_after_s)
        self.held = total

    async def count(self, stream: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        # aclosing: the request's stream ends here, whichever way parsing ends.
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                self.seen += len(chunk)
                if self.seen > self.limit:
                    raise too_large(self.max_bytes)
                self.hold_up_to(self.seen)
                yield chunk
