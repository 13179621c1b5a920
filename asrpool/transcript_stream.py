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
from typing import Any

from .wire import ErrorCode, error_body

DELTA = "transcript.text.delta"
DONE = "transcript.text.done"
ERROR = "error"
MEDIA_TYPE = "text/event-stream"
# Where the router tells a worker to start: seconds from the start of the upload.
OFFSET_FIELD = "asrpool_offset"
END_MARK = "asrpool_end"
# Whisper's encoder makes 50 frames a second: what a streamed answer's usage counts.
AUDIO_TOKENS_PER_SECOND = 50


def encode(event: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


def delta(
    text: str, *, logprobs: list[dict[str, Any]] | None = None, end_s: float | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": DELTA, "delta": text}
    if logprobs is not None:
        event["logprobs"] = logprobs
    if end_s is not None:
        event[END_MARK] = round(end_s, 3)
    return event


def done(
    text: str, *, audio_seconds: float, output_tokens: int, logprobs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    audio_tokens = math.ceil(max(audio_seconds, 0.0) * AUDIO_TOKENS_PER_SECOND)
    event: dict[str, Any] = {
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


def error(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {"type": ERROR, **error_body(code, message)}


def for_client(event: dict[str, Any]) -> dict[str, Any]:
    """The event without asrpool's marks."""
    return {k: v for k, v in event.items() if not k.startswith("asrpool_")}


class EventReader:
    """Reads server-sent events from bytes as they arrive (any split), JSON ``data`` only."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The complete events in the bytes seen so far; malformed ones are skipped."""
        self._buffer += chunk.replace(b"\r\n", b"\n")
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
