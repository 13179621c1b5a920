"""OpenAI's Realtime transcription protocol, GA and beta: client events in, server events out.

Client JSON events are parsed here into commands (``UpdateSession``, ``AppendAudio``,
``CommitAudio``, ``ClearAudio``) or a ``ProtocolError`` that the session sends back as an
``error`` event (the socket stays open). Server events are built here too, so their shapes
live in one place; tests validate each against the ``openai`` SDK's own pydantic types.

A session speaks one dialect at a time (``Dialect``). At connect it is beta when the client
says so (the ``OpenAI-Beta: realtime=v1`` header that ``client.beta.realtime`` sends, or
the ``openai-beta.realtime-v1`` subprotocol a browser can offer), GA otherwise. From then
on it is the dialect of the client's last session update: ``session.update`` is GA,
``transcription_session.update`` beta, so an answer is always named as its question was.
Only the session events differ by name (``session.created/updated`` with the GA session
object, ``transcription_session.created/updated`` with the beta one), and only GA has
``input_audio_buffer.timeout_triggered``; the buffer, transcription and error events are
the same in both. asrpool's extras ride where the SDK's types allow extra fields:
``partial_transcript`` on deltas, ``max_chunk_ms`` in turn detection, the beta
``input_audio_sample_rate``.

Pure. docs/realtime.md shows a whole exchange and a table of every event and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from asrpool_contract.wire import OPENAI_DEFAULT_MODEL

from .pcm import BadAudio, decode_base64_audio
from .realtime_errors import ProtocolError, as_event, error_event
from .realtime_settings import (
    LOGPROBS,
    Applied,
    Dialect,
    ModelCheck,
    SessionConfig,
    TurnKind,
    apply_update,
)
from .session_slots import SessionCap

__all__ = ["Dialect", "ProtocolError", "SessionConfig", "as_event", "error_event"]

# One append may carry at most this much decoded audio (OpenAI allows 15 MiB of base64).
MAX_APPEND_BYTES = 2 * 2**20
BETA_HEADER_VALUE = "realtime=v1"
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
# The model a session shows when the client named none: what OpenAI clients send.
DEFAULT_MODEL_NAME = OPENAI_DEFAULT_MODEL


def dialect_at_connect(beta_header: str | None, subprotocols: list[str]) -> Dialect:
    """The dialect a session starts in, before the client sent anything."""
    if beta_header and BETA_HEADER_VALUE in beta_header.replace(" ", "").split(","):
        return Dialect.BETA
    return Dialect.BETA if BETA_SUBPROTOCOL in subprotocols else Dialect.GA


@dataclass(frozen=True)
class UpdateSession:
    applied: Applied  # the settings after the update, and an error per refused field
    dialect: Dialect  # the update's own dialect, the session's from now on


@dataclass(frozen=True)
class AppendAudio:
    samples: np.ndarray  # int16 at the session's input rate


@dataclass(frozen=True)
class CommitAudio:
    pass


@dataclass(frozen=True)
class ClearAudio:
    pass


Command = UpdateSession | AppendAudio | CommitAudio | ClearAudio
UPDATE_EVENTS = {"session.update": Dialect.GA, "transcription_session.update": Dialect.BETA}


def parse_event(
    text: str | bytes, config: SessionConfig, check_model: ModelCheck
) -> tuple[str | None, Command]:
    """(the client's event_id, the command) or ``ProtocolError``."""
    try:
        event = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(event, dict):
        raise ProtocolError("invalid_event", "Each message must be a JSON object with a 'type'.")
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    kind = event.get("type")
    if not isinstance(kind, str):  # found by fuzzing: a list as the type was a TypeError
        raise ProtocolError(
            "invalid_event", "'type' must be a string.", param="type", event_id=event_id
        )
    try:
        if kind in UPDATE_EVENTS:
            session = event.get("session")
            if not isinstance(session, dict):
                raise ProtocolError(
                    "invalid_event", "'session' must be an object.", param="session"
                )
            dialect = UPDATE_EVENTS[kind]
            return event_id, UpdateSession(
                apply_update(config, session, dialect, check_model), dialect
            )
        if kind == "input_audio_buffer.append":
            return event_id, AppendAudio(_audio(event.get("audio"), config))
        if kind == "input_audio_buffer.commit":
            return event_id, CommitAudio()
        if kind == "input_audio_buffer.clear":
            return event_id, ClearAudio()
    except ProtocolError as err:
        err.event_id = event_id
        raise
    raise ProtocolError(
        "unknown_event",
        f"Unknown event type {kind!r}. A transcription session takes session.update (GA) or "
        "transcription_session.update (beta), and input_audio_buffer.append/commit/clear.",
        param="type",
        event_id=event_id,
    )


def _audio(payload: object, config: SessionConfig) -> np.ndarray:
    if not isinstance(payload, str) or not payload:
        raise ProtocolError(
            "invalid_audio", f"'audio' must be base64 {_format_words(config)}.", param="audio"
        )
    if len(payload) * 3 // 4 > MAX_APPEND_BYTES:
        raise ProtocolError(
            "append_too_large",
            f"One append may carry at most {MAX_APPEND_BYTES // 2**20} MiB of audio; "
            "send smaller pieces (e.g. 100 ms each).",
            param="audio",
        )
    try:
        return decode_base64_audio(payload, config.audio_format)
    except BadAudio as exc:
        raise ProtocolError("invalid_audio", f"{exc}.", param="audio") from None


def _format_words(config: SessionConfig) -> str:
    if config.audio_format.fixed_rate:
        return f"{config.audio_format.value} (G.711) bytes"
    return "PCM16 mono, little-endian"


# --- session objects ------------------------------------------------------------------


def session_event(
    kind: str, config: SessionConfig, session_id: str, dialect: Dialect
) -> dict[str, Any]:
    """``session.created/updated`` (GA) or ``transcription_session.created/updated`` (beta);
    ``kind`` is ``created`` or ``updated``."""
    if dialect is Dialect.GA:
        return {"type": f"session.{kind}", "session": ga_session(config, session_id)}
    return {"type": f"transcription_session.{kind}", "session": beta_session(config, session_id)}


def ga_session(config: SessionConfig, session_id: str) -> dict[str, Any]:
    """The GA transcription session object (``RealtimeTranscriptionSessionCreateRequest``,
    plus the ``id`` and ``object`` OpenAI's server adds)."""
    fmt: dict[str, Any] = {"type": config.audio_format.value}
    if not config.audio_format.fixed_rate:
        fmt["rate"] = config.sample_rate
    nr = config.noise_reduction
    transcription: dict[str, Any] = {
        "model": config.model or DEFAULT_MODEL_NAME,
        "language": config.language,
        "prompt": config.prompt or "",
    }
    if config.keywords:
        transcription["keywords"] = list(config.keywords)
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "audio": {
            "input": {
                "format": fmt,
                "noise_reduction": None
                if nr is None
                else {"type": nr.kind, "strength": nr.strength},
                "transcription": transcription,
                "turn_detection": _turn_detection(config, Dialect.GA),
            }
        },
        "include": [LOGPROBS] if config.include_logprobs else [],
    }


BETA_FORMAT_NAMES = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}


def beta_session(config: SessionConfig, session_id: str) -> dict[str, Any]:
    """The beta transcription session object (``TranscriptionSession``)."""
    nr = config.noise_reduction
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "input_audio_format": BETA_FORMAT_NAMES[config.audio_format.value],
        "input_audio_sample_rate": config.input_rate,
        "input_audio_transcription": {
            "model": config.model or DEFAULT_MODEL_NAME,
            "language": config.language,
            "prompt": config.prompt or "",
        },
        "input_audio_noise_reduction": None if nr is None else {"type": nr.kind},
        "turn_detection": _turn_detection(config, Dialect.BETA),
        "include": [LOGPROBS] if config.include_logprobs else [],
        "modalities": ["text"],
    }


def _turn_detection(config: SessionConfig, dialect: Dialect) -> dict[str, Any] | None:
    c = config.chunking
    if not c.server_vad:
        return None
    shown: dict[str, Any] = {"type": config.turn_kind.value}
    if config.turn_kind is TurnKind.SEMANTIC_VAD:
        shown["eagerness"] = config.eagerness or "auto"
    else:
        shown.update(
            threshold=c.vad.threshold,
            prefix_padding_ms=c.prefix_padding_ms,
            silence_duration_ms=c.silence_duration_ms,
        )
        if dialect is Dialect.GA:
            shown["idle_timeout_ms"] = c.idle_timeout_ms
    shown["max_chunk_ms"] = c.max_utterance_ms
    shown.update(config.response_flags)
    return shown


# --- answers from the pool ------------------------------------------------------------


@dataclass(frozen=True)
class Final:
    text: str
    logprobs: (
        list[dict[str, Any]] | None
    )  # OpenAI's {token, logprob, bytes}, when the pod gave them


def final_answer(body: bytes | str) -> Final:
    """A worker's json answer → the final's text (and logprobs, when it sent them).

    ``ValueError`` when the body is not a transcription. Log-probabilities that are not
    OpenAI's shape are dropped, not fatal: the text is what the client waits for."""
    try:
        answer = json.loads(body)
        text = str(answer["text"]).strip()
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("not a json transcription") from exc
    raw = answer.get("logprobs")
    logprobs = None
    if isinstance(raw, list) and all(_is_logprob(p) for p in raw):
        logprobs = [
            {
                "token": p["token"],
                "logprob": float(p["logprob"]),
                "bytes": p.get("bytes") or list(p["token"].encode("utf-8")),
            }
            for p in raw
        ]
    return Final(text, logprobs)


def _is_logprob(p: object) -> bool:
    if not isinstance(p, dict) or not isinstance(p.get("token"), str):
        return False
    logprob, raw_bytes = p.get("logprob"), p.get("bytes")
    if not isinstance(logprob, int | float) or isinstance(logprob, bool):
        return False
    return raw_bytes is None or (
        isinstance(raw_bytes, list) and all(isinstance(b, int) for b in raw_bytes)
    )


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


def timeout_triggered(item_id: str, audio_start_ms: int, audio_end_ms: int) -> dict[str, Any]:
    """GA only: ``idle_timeout_ms`` of audio passed without speech; the stretch is committed
    as ``item_id`` next (OpenAI commits it too)."""
    return {
        "type": "input_audio_buffer.timeout_triggered",
        "item_id": item_id,
        "audio_start_ms": audio_start_ms,
        "audio_end_ms": audio_end_ms,
    }


def delta(item_id: str, text_delta: str, partial: str, audio_end_ms: int) -> dict[str, Any]:
    """A partial result: ``delta`` appends to what earlier deltas of the item showed;
    ``partial_transcript`` (our addition) is the whole current hypothesis, which may
    revise earlier partials; ``audio_end_ms`` (ours too, on the session's audio clock as
    in ``speech_stopped``) is where the audio it read ends, so a client can tell how far
    behind the speaker the text is. The ``completed`` event's transcript is final."""
    return {
        "type": "conversation.item.input_audio_transcription.delta",
        "item_id": item_id,
        "content_index": 0,
        "delta": text_delta,
        "partial_transcript": partial,
        "audio_end_ms": audio_end_ms,
    }


def completed(
    item_id: str,
    transcript: str,
    audio_seconds: float,
    logprobs: list[dict[str, Any]] | None = None,
    *,
    with_logprobs: bool = False,
) -> dict[str, Any]:
    """The final text of an item. ``usage`` is OpenAI's duration shape: asrpool counts
    audio seconds, not tokens. ``logprobs`` only when the session asked (``include``);
    null there means the pod that served the piece computes none."""
    event: dict[str, Any] = {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": item_id,
        "content_index": 0,
        "transcript": transcript,
        "usage": {"type": "duration", "seconds": round(audio_seconds, 3)},
    }
    if with_logprobs:
        event["logprobs"] = logprobs
    return event


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
