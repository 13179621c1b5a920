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
import re
from typing import Any, Final, Literal, NotRequired

from typing_extensions import TypedDict  # pydantic reads these on Python 3.11

from .audio_answers import Logprob
from .wire import ErrorCode, ErrorObject, error_body

_LINE_END = re.compile(rb"\r\n|\r|\n")  # an SSE line ends with any of the three

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
        event["asrpool_end"] = round(end_s, 3)  # END_MARK: a TypedDict key is a literal
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
    """Reads server-sent events from bytes as they arrive (any split), JSON ``data`` only.

    Lines end as the SSE standard says, with CRLF, LF or a lone CR. Found by atheris: a
    reader that rewrote CRLF to LF on its buffer read CR CR LF as one line end or two,
    depending on where a chunk ended. Read line by line, a CR at the very end of the bytes
    seen so far waits for the next byte, which tells whether it is half of a CRLF.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._scanned = 0  # leading bytes of the buffer known to hold no line end
        self._data: list[bytes] = []  # the data lines of the event being read

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The complete events in the bytes seen so far; malformed ones are skipped."""
        self._buffer += chunk
        events: list[dict[str, Any]] = []
        start = 0
        while (end := _LINE_END.search(self._buffer, max(start, self._scanned))) is not None:
            if end.group() == b"\r" and end.end() == len(self._buffer):
                break  # perhaps the CR of a CRLF: the next chunk tells
            self._line(self._buffer[start : end.start()], events)
            start = end.end()
        self._buffer = self._buffer[start:]
        self._scanned = max(0, len(self._buffer) - 1)  # not the last byte: a CR stays unsure
        return events

    def _line(self, line: bytes, events: list[dict[str, Any]]) -> None:
        if line:
            if line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" "))
            return  # other fields and comments carry nothing we read
        data, self._data = self._data, []
        if not data:
            return
        try:
            event = json.loads(b"\n".join(data))
        except ValueError:
            return
        if isinstance(event, dict):
            events.append(event)
