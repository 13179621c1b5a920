"""Streamed transcriptions (``stream=true``): OpenAI's server-sent events, made and read here.

The worker sends one ``transcript.text.delta`` per decoded segment, then one
``transcript.text.done`` with the whole text and ``usage``; an error after the stream
began is an ``error`` event in OpenAI's error shape (the SDK raises it as ``APIError``).
Two asrpool marks ride on the worker's deltas, for the router only: ``asrpool_end``,
where in the audio the segment ended (seconds), so that a stream cut short by a lost pod
resumes on another pod from there (the ``asrpool_offset`` form field), and nothing is
repeated or lost; the router removes them before the client sees the events.

The text of the deltas, concatenated, is the text of ``done`` exactly.

Pure: bytes and dicts only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, Final, Literal, NotRequired

from typing_extensions import TypedDict  # pydantic reads these on Python 3.11

from .audio_answers import Logprob
from .wire import ErrorCode, ErrorObject, error_body

DELTA: Final = "transcript.text.delta"
DONE: Final = "transcript.text.done"
ERROR: Final = "error"
MEDIA_TYPE = "text/event-stream"
# Where the router tells a worker to start: seconds from the start of the upload.
OFFSET_FIELD = "asrpool_offset"
END_MARK = "asrpool_end"


# The events' shapes: the builders below are typed with them, and the OpenAPI document
# (the 200 answer's text/event-stream) is generated from them.
class DeltaEvent(TypedDict):
    """Text decoded since the last delta (one segment)."""

    type: Literal["transcript.text.delta"]
    delta: str
    logprobs: NotRequired[list[Logprob]]
    # asrpool: where in the audio the segment ended (seconds), for the router only: it is
    # removed before a client sees the event.
    asrpool_end: NotRequired[float]


class InputTokenDetails(TypedDict):
    audio_tokens: int
    text_tokens: int


class TokenUsage(TypedDict):
    """Whisper's 50 encoder frames a second of audio in, the text tokens decoded out."""

    type: Literal["tokens"]
    input_tokens: int
    input_token_details: InputTokenDetails
    output_tokens: int
    total_tokens: int


class DoneEvent(TypedDict):
    """The last event: the whole text (the deltas' texts concatenated) and the usage."""

    type: Literal["transcript.text.done"]
    text: str
    usage: TokenUsage
    logprobs: NotRequired[list[Logprob]]


class ErrorEvent(TypedDict):
    """An error after the stream began, in OpenAI's error shape."""

    type: Literal["error"]
    error: ErrorObject


StreamEvent = DeltaEvent | DoneEvent | ErrorEvent
# Whisper's encoder makes 50 frames a second: what a streamed answer's usage counts.
AUDIO_TOKENS_PER_SECOND = 50


def encode(event: StreamEvent | dict[str, Any]) -> bytes:
    """One server-sent event."""
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


def delta(
    text: str, *, logprobs: list[Logprob] | None = None, end_s: float | None = None
) -> DeltaEvent:
    event: DeltaEvent = {"type": DELTA, "delta": text}
    if logprobs is not None:
        event["logprobs"] = logprobs
    if end_s is not None:
        event["asrpool_end"] = round(end_s, 3)  # END_MARK
    return event


def done(
    text: str, *, audio_seconds: float, output_tokens: int, logprobs: list[Logprob] | None
) -> DoneEvent:
    audio_tokens = math.ceil(max(audio_seconds, 0.0) * AUDIO_TOKENS_PER_SECOND)
    event: DoneEvent = {
        "type": DONE,
        "text": text,
        "usage": {
            "type": "tokens",
            "input_tokens": audio_tokens,
            "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
            "output_tokens": output_tokens,
            "total_tokens": audio_tokens + output_tokens,
        },
    }
    if logprobs is not None:
        event["logprobs"] = logprobs
    return event


def error(code: ErrorCode, message: str | None = None) -> ErrorEvent:
    return {"type": ERROR, "error": error_body(code, message)["error"]}


def for_client(event: dict[str, Any]) -> dict[str, Any]:
    """The event without asrpool's marks."""
    return {k: v for k, v in event.items() if not k.startswith("asrpool_")}


class EventReader:
    """Reads server-sent events from bytes as they arrive (any split), JSON ``data`` only."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The complete events in the bytes seen so far; malformed ones are skipped."""
        # On the whole buffer, not the chunk: found by atheris, a chunk that ended between
        # the CR and the LF of a line end lost the event it closed.
        self._buffer = (self._buffer + chunk).replace(b"\r\n", b"\n")
        events = []
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            data = _data_of(block.split(b"\n"))
            if data is None:
                continue
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


def _data_of(lines: Iterable[bytes]) -> bytes | None:
    parts = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
    return b"\n".join(parts) if parts else None
