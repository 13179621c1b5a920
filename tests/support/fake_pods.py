"""A labelled fake of the router's one seam to its pods, ``transport.PodTransport``.

The unit tests of the runner (``dispatch.py``) and of live sessions (``realtime.py``) hand
it to the real pool, runner and session instead of the aiohttp transport. Each attempt
takes the next scripted reply, whichever pod it went to, and is recorded (the pod, the form
fields). No sockets and no sleeps: a test runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from asrpool_router.logic.errors import AttemptResult
from asrpool_router.transport import Answer, BufferedUpload, PodTransport

TEXT = "hello there"
_BODY = b'{"text": "hello there"}'
OK = Answer(AttemptResult(status=200, content_type="application/json", body=_BODY), 200, _BODY)
UNREACHABLE = Answer(AttemptResult(transport_error="connect"))


def refused(code: str, status: int = 503) -> Answer:
    """A pod's error answer with our ``x-asrpool-error-code`` (``gpu_oom``, …)."""
    return Answer(AttemptResult(status=status, error_code_header=code, body_text=code), status)


class Hold:
    """An attempt that waits until ``release`` (never, if not called), then answers."""

    def __init__(self, answer: Answer = OK) -> None:
        self.answer = answer
        self._go = asyncio.Event()

    def release(self) -> None:
        self._go.set()

    async def wait(self) -> Answer:
        await self._go.wait()
        return self.answer


# A stream attempt's reply: the pod's events, then the stream ends (with a done event among
# them, or cut short); an Answer instead of a stream (an error, a connection that failed).
Reply = Answer | Hold | list[dict[str, Any]]


@dataclass(frozen=True)
class Attempt:
    pod: str  # the pod's URL
    fields: tuple[tuple[str, str], ...]


class FakePods(PodTransport):
    def __init__(self, *replies: Reply) -> None:
        super().__init__()
        self.replies = list(replies)  # taken in order; OK once they run out
        self.attempts: list[Attempt] = []
        self.arrived = threading.Event()  # set by every attempt, for a test on another thread

    def _next(self, base_url: str, upload: BufferedUpload) -> Reply:
        self.attempts.append(Attempt(base_url, tuple(upload.fields)))
        self.arrived.set()
        return self.replies.pop(0) if self.replies else OK

    async def send(
        self, base_url: str, path: str, upload: BufferedUpload, timeout_s: float
    ) -> Answer:
        reply = self._next(base_url, upload)
        if isinstance(reply, Hold):
            return await reply.wait()
        assert isinstance(reply, Answer), reply
        return reply

    async def stream(
        self, base_url: str, path: str, upload: BufferedUpload
    ) -> AsyncGenerator[dict[str, Any] | Answer, None]:
        reply = self._next(base_url, upload)
        if isinstance(reply, Answer):
            yield reply
            return
        assert isinstance(reply, list), reply
        for event in reply:
            yield event
