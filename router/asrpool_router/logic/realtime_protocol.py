"""The subset of OpenAI's Realtime transcription protocol a transcription client needs.

Client → server JSON events are parsed here into commands (``UpdateSession``,
``AppendAudio``, ``CommitAudio``, ``ClearAudio``) or a ``ProtocolError`` that
the session sends back as an ``error`` event (the socket stays open). Server
events are built here too, so their shapes live in one place. Both session
shapes are read: the beta ``transcription_session.update`` (``input_audio_format``,
``input_audio_transcription``, ``turn_detection``) and the GA ``session.update``
(``session.audio.input.{format,transcription,turn_detection}``).

Pure. docs/realtime.md shows a whole exchange.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .chunking import ChunkingPolicy
from .pcm import ACCEPTED_RATES, BadAudio, decode_base64_pcm16
from .session_slots import SessionCap
from .vad import VadPolicy

# One append may carry at most this much decoded audio (OpenAI allows 15 MiB of base64).
MAX_APPEND_BYTES = 2 * 2**20


class ProtocolError(Exception):
    """A client event we cannot act on; answered with an ``error`` event, session survives."""

    def __init__(
        self, code: str, message: str, *, param: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id


@dataclass(frozen=True)
class SessionConfig:
    model: str | None = None  # the pool; None → the default pool
    language: str | None = None
    prompt: str | None = None
    sample_rate: int = 24_000  # what OpenAI clients send
    chunking: ChunkingPolicy = field(default_factory=ChunkingPolicy)
    # True once the client chose turn detection itself; until then the pool's settings apply.
    chunking_chosen: bool = False

    def public(self) -> dict[str, Any]:
        """The session as ``transcription_session.created/updated`` shows it."""
        c = self.chunking
        return {
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16",
            "input_audio_sample_rate": self.sample_rate,
            "input_audio_transcription": {
                "model": self.model or "whisper-1",
                "language": self.language,
                "prompt": self.prompt or "",
            },
            "turn_detection": None
            if not c.server_vad
            else {
                "type": "server_vad",
                "threshold": c.vad.threshold,
                "prefix_padding_ms": c.prefix_padding_ms,
                "silence_duration_ms": c.silence_duration_ms,
                "max_chunk_ms": c.max_utterance_ms,
            },
        }


@dataclass(frozen=True)
class UpdateSession:
    config: SessionConfig


@dataclass(frozen=True)
class AppendAudio:
    samples: np.ndarray  # int16 at the session's sample rate


@dataclass(frozen=True)
class CommitAudio:
    pass


@dataclass(frozen=True)
class ClearAudio:
    pass


Command = UpdateSession | AppendAudio | CommitAudio | ClearAudio


def parse_event(text: str | bytes, config: SessionConfig) -> tuple[str | None, Command]:
    """(the client's event_id, the command) or ``ProtocolError``."""
    try:
        event = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(event, dict):
        raise ProtocolError("invalid_event", "Each message must be a JSON object with a 'type'.")
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    kind = event.get("type")
    try:
        if kind in ("transcription_session.update", "session.update"):
            session = event.get("session")
            if not isinstance(session, dict):
                raise ProtocolError(
                    "invalid_event", "'session' must be an object.", param="session"
                )
            return event_id, UpdateSession(apply_session_update(config, session))
        if kind == "input_audio_buffer.append":
            return event_id, AppendAudio(_audio(event.get("audio")))
        if kind == "input_audio_buffer.commit":
            return event_id, CommitAudio()
        if kind == "input_audio_buffer.clear":
            return event_id, ClearAudio()
    except ProtocolError as err:
        err.event_id = event_id
        raise
    raise ProtocolError(
        "unknown_event",
        f"Unknown event type {kind!r}. This endpoint takes transcription_session.update, "
        "session.update and input_audio_buffer.append/commit/clear.",
        param="type",
        event_id=event_id,
    )


def _audio(payload: object) -> np.ndarray:
    if not isinstance(payload, str) or not payload:
        raise ProtocolError("invalid_audio", "'audio' must be base64 PCM16 mono.", param="audio")
    if len(payload) * 3 // 4 > MAX_APPEND_BYTES:
        raise ProtocolError(
            "append_too_large",
            f"One append may carry at most {MAX_APPEND_BYTES // 2**20} MiB of audio; "
            "send smaller pieces (e.g. 100 ms each).",
            param="audio",
        )
    try:
        return decode_base64_pcm16(payload)
    except BadAudio as exc:
        raise ProtocolError("invalid_audio", f"{exc}.", param="audio") from None


def apply_session_update(config: SessionConfig, session: dict[str, Any]) -> SessionConfig:
    """The config after a (beta or GA) session update; unknown keys are ignored."""
    audio = session.get("audio")
    audio_in = audio.get("input") if isinstance(audio, dict) else None
    if not isinstance(audio_in, dict):  # found by fuzzing: "input": null was an AttributeError
        audio_in = {}
    transcription = session.get("input_audio_transcription") or audio_in.get("transcription")
    if transcription is not None and not isinstance(transcription, dict):
        raise ProtocolError(
            "invalid_event",
            "transcription settings must be an object.",
            param="session.input_audio_transcription",
        )
    out = config
    if transcription:
        out = replace(
            out,
            model=_text(transcription, "model") or out.model,
            language=_text(transcription, "language"),
            prompt=_text(transcription, "prompt"),
        )
    out = replace(out, sample_rate=_sample_rate(session, audio_in, out.sample_rate))
    if "turn_detection" in session or "turn_detection" in audio_in:
        td = (
            session["turn_detection"] if "turn_detection" in session else audio_in["turn_detection"]
        )
        out = replace(out, chunking=_turn_detection(td, out.chunking), chunking_chosen=True)
    return out


def _text(transcription: dict[str, Any], key: str) -> str | None:
    """A transcription setting: a string or null (found by fuzzing: a number or an object
    was kept, and failed later, where the session sent it on to a pod)."""
    value = transcription.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise ProtocolError(
        "invalid_event",
        f"input_audio_transcription.{key} must be a string or null.",
        param=f"session.input_audio_transcription.{key}",
    )


def _sample_rate(session: dict[str, Any], audio_in: dict[str, Any], current: int) -> int:
    fmt = session.get("input_audio_format")
    if fmt is not None and fmt != "pcm16":
        raise ProtocolError(
            "unsupported_audio_format",
            f"input_audio_format {fmt!r} is not supported; send pcm16.",
            param="session.input_audio_format",
        )
    rate = session.get("input_audio_sample_rate", current)
    ga_format = audio_in.get("format")
    if isinstance(ga_format, dict):
        if ga_format.get("type") not in (None, "audio/pcm"):
            raise ProtocolError(
                "unsupported_audio_format",
                "Only audio/pcm is supported.",
                param="session.audio.input.format.type",
            )
        rate = ga_format.get("rate", rate)
    if rate not in ACCEPTED_RATES:
        raise ProtocolError(
            "invalid_sample_rate",
            f"Sample rate {rate!r} is not supported; send PCM16 mono at 24000 or 16000 Hz.",
            param="session.input_audio_sample_rate",
        )
    return int(rate)


def _turn_detection(td: object, current: ChunkingPolicy) -> ChunkingPolicy:
    if td is None:
        return replace(current, server_vad=False)
    if not isinstance(td, dict) or td.get("type", "server_vad") != "server_vad":
        raise ProtocolError(
            "invalid_turn_detection",
            'turn_detection must be null or {"type": "server_vad", …}.',
            param="session.turn_detection",
        )
    try:
        vad = VadPolicy(threshold=float(td.get("threshold", current.vad.threshold)))
        return replace(
            current,
            server_vad=True,
            vad=vad,
            silence_duration_ms=_ms(td, "silence_duration_ms", current.silence_duration_ms),
            prefix_padding_ms=_ms(td, "prefix_padding_ms", current.prefix_padding_ms),
            max_utterance_ms=_ms(td, "max_chunk_ms", current.max_utterance_ms),
        )
    # OverflowError: found by fuzzing, int(1e999) ended the session instead of an error event.
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(
            "invalid_turn_detection", f"Bad turn_detection: {exc}.", param="session.turn_detection"
        ) from None


# Found by fuzzing: a negative padding, or a max_chunk_ms of 10**30 that never cuts (and so
# holds a talking client's audio without end), were taken as they came.
_MS_RANGES = {
    "silence_duration_ms": (0, 10_000),
    "prefix_padding_ms": (0, 10_000),
    "max_chunk_ms": (2_000, 30_000),  # a Whisper window is 30 s
}


def _ms(td: dict[str, Any], key: str, current: int) -> int:
    value = td.get(key, current)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    low, high = _MS_RANGES[key]
    if not low <= value <= high:  # NaN is out of every range
        raise ValueError(f"{key} must be from {low} to {high}")
    return int(value)


# --- server events ------------------------------------------------------------------


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


# WebSocket close code 1013 "Try Again Later" (RFC 6455 registry): a cap, not a fault.
CLOSE_TRY_AGAIN_LATER = 1013


def session_limit_error(cap: SessionCap, allowed: int) -> dict[str, Any]:
    """The ``error`` event of a session refused by a cap (the socket closes with 1013)."""
    if cap is SessionCap.PER_KEY:
        message = (
            f"This API key already has {allowed} live sessions open, the most allowed. "
            "Close one of them, or retry later."
        )
    else:
        message = (
            f"The server already runs {allowed} live sessions, the most it allows. "
            "Close another session, or retry later."
        )
    return error_event("session_limit_reached", message, error_type="rate_limit_error")


def idle_timeout_error(seconds: float) -> dict[str, Any]:
    """The ``error`` event of a session closed for silence (the socket closes with 1000)."""
    return error_event(
        "session_idle_timeout",
        f"No message arrived for {seconds:g} s, so the session was closed. "
        "Open a new session to go on; send audio (or silence) to keep one open.",
    )


def session_event(kind: str, config: SessionConfig, session_id: str) -> dict[str, Any]:
    return {"type": kind, "session": {"id": session_id, **config.public()}}


def speech_started(item_id: str, audio_start_ms: int) -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.speech_started",
        "audio_start_ms": audio_start_ms,
        "item_id": item_id,
    }


def speech_stopped(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.speech_stopped",
        "audio_end_ms": audio_end_ms,
        "item_id": item_id,
    }


def committed(item_id: str, previous_item_id: str | None) -> dict[str, Any]:
    return {
        "type": "input_audio_buffer.committed",
        "item_id": item_id,
        "previous_item_id": previous_item_id,
    }


def cleared() -> dict[str, Any]:
    return {"type": "input_audio_buffer.cleared"}


def delta(item_id: str, text_delta: str, partial: str) -> dict[str, Any]:
    """A partial result: ``delta`` appends to what earlier deltas of the item showed;
    ``partial_transcript`` (our addition) is the whole current hypothesis, which may
    revise earlier partials. The ``completed`` event's transcript is final."""
    return {
        "type": "conversation.item.input_audio_transcription.delta",
        "item_id": item_id,
        "content_index": 0,
        "delta": text_delta,
        "partial_transcript": partial,
    }


def completed(item_id: str, transcript: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": item_id,
        "content_index": 0,
        "transcript": transcript,
    }


def failed(item_id: str, code: str, message: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {"type": "transcription_error", "code": code, "message": message},
    }


def text_delta(shown: str, hypothesis: str) -> tuple[str, str]:
    """(delta to append, text shown after it) for a client that only appends deltas.

    When the new hypothesis extends what the client shows, the delta is the new tail.
    When it revises earlier words, an append-only client cannot take it back: the delta
    is empty and it keeps what it shows until ``completed`` (``partial_transcript`` has
    the revision for clients that replace).
    """
    if hypothesis.startswith(shown):
        return hypothesis[len(shown) :], hypothesis
    return "", shown
