"""Validate the form fields of an OpenAI audio request into engine options.

Pure: takes the plain field values, returns options or raises
``AsrpoolError(invalid_request)`` naming the bad parameter. Every field OpenAI's SDK sends
is either honoured or refused with a sentence saying why; none is silently ignored
(docs/openai.md lists them). The SDK sends nested and list fields in bracket form:
``chunking_strategy[type]=server_vad``, ``include[]=logprobs``, ``languages[]=en``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from asrpool.formats import FORMATS
from asrpool.transcript_stream import OFFSET_FIELD
from asrpool.wire import OPENAI_TRANSCRIPTION_MODELS, AsrpoolError, ErrorCode

from .engine import DecodeOptions, VadSettings

# asrpool's own form field (other servers ignore it): this is a live partial, speed first.
DRAFT_FIELD = "asrpool_draft"
# Formats a stream can carry: the text comes as deltas, nothing else has a streamed shape.
STREAMABLE = ("json", "text")
_DIARIZATION = "asrpool's pools transcribe; they do not tell speakers apart (no diarization)"


@dataclass(frozen=True)
class AudioRequest:
    options: DecodeOptions
    response_format: str
    stream: bool = False


def _bad(param: str, message: str) -> AsrpoolError:
    return AsrpoolError(ErrorCode.INVALID_REQUEST, message, param=param)


def parse_request(fields: dict[str, list[str]], *, task: str, served_model: str) -> AudioRequest:
    """Fields as multipart gives them (name → values); ``task`` is transcribe or translate."""

    def one(name: str) -> str | None:
        values = fields.get(name) or []
        return values[-1] if values else None

    def many(name: str) -> list[str]:
        return [v for key in (f"{name}[]", name) for v in fields.get(key, []) if v != ""]

    model = one("model")
    if model and model != served_model and model not in OPENAI_TRANSCRIPTION_MODELS:
        raise AsrpoolError(
            ErrorCode.MODEL_NOT_FOUND,
            f"Model '{model}' is not served here; this server serves '{served_model}'.",
            param="model",
        )

    response_format = one("response_format") or "json"
    if response_format == "diarized_json":
        raise _bad("response_format", f"response_format=diarized_json: {_DIARIZATION}.")
    if response_format not in FORMATS:
        raise _bad(
            "response_format",
            f"response_format must be one of {', '.join(FORMATS)}; got '{response_format}'.",
        )
    for name in ("known_speaker_names", "known_speaker_references"):
        if many(name):
            raise _bad(f"{name}[]", f"{name}[]: {_DIARIZATION}.")

    stream = _flag(one("stream"), "stream")
    if stream and response_format not in STREAMABLE:
        raise _bad(
            "stream",
            f"stream=true works with response_format json or text; got '{response_format}'.",
        )

    include = many("include")
    unknown = sorted(set(include) - {"logprobs"})
    if unknown:
        raise _bad("include[]", f"include[] takes 'logprobs'; got {unknown}.")
    logprobs = "logprobs" in include
    if logprobs and response_format != "json":
        raise _bad("include[]", "include[]=logprobs works with response_format=json only.")

    temperature: float | None = None
    raw_temperature = one("temperature")
    if raw_temperature not in (None, ""):
        try:
            temperature = float(raw_temperature)
        except ValueError:
            raise _bad("temperature", "temperature must be a number between 0 and 1.") from None
        if not 0.0 <= temperature <= 1.0:
            raise _bad("temperature", "temperature must be a number between 0 and 1.")

    granularities = set(many("timestamp_granularities"))
    unknown = sorted(granularities - {"word", "segment"})
    if unknown:
        raise _bad(
            "timestamp_granularities[]",
            f"timestamp_granularities[] takes 'word' and 'segment'; got {unknown}.",
        )
    if "word" in granularities and response_format != "verbose_json":
        raise _bad(
            "timestamp_granularities[]",
            "Word timestamps need response_format=verbose_json.",
        )

    language = _language(one("language"), "language")
    languages = tuple(_language(code, "languages[]") or "" for code in many("languages"))

    prompt = one("prompt") or ""
    keywords = many("keywords")
    if keywords:
        # Whisper is steered by its prompt: naming the words there makes it spell them so.
        prompt = " ".join([prompt, ", ".join(keywords)]).strip()

    return AudioRequest(
        options=DecodeOptions(
            task=task,
            language=language,
            languages=languages,
            prompt=prompt or None,
            temperature=temperature,
            word_timestamps="word" in granularities,
            # A stream sends a delta per segment: without timestamps a clip is one segment.
            timestamps=stream or response_format in ("srt", "vtt", "verbose_json"),
            draft=_flag(one(DRAFT_FIELD), DRAFT_FIELD),
            vad=_chunking(fields),
            logprobs=logprobs,
            offset_s=_offset(one(OFFSET_FIELD)),
        ),
        response_format=response_format,
        stream=stream,
    )


def _flag(value: str | None, param: str) -> bool:
    if value in (None, "", "false", "False", "0"):
        return False
    if value in ("true", "True", "1"):
        return True
    raise _bad(param, f"{param} must be true or false; got '{value}'.")


def _language(value: str | None, param: str) -> str | None:
    code = (value or "").strip().lower() or None
    if code is not None and not (2 <= len(code) <= 3 and code.isalpha()):
        raise _bad(param, f"{param} must be an ISO-639-1 code such as 'en' or 'zh'.")
    return code


def _offset(value: str | None) -> float:
    if value in (None, ""):
        return 0.0
    try:
        offset = float(value)
    except ValueError:
        raise _bad(OFFSET_FIELD, f"{OFFSET_FIELD} must be seconds (a number).") from None
    if not 0.0 <= offset < 86_400:
        raise _bad(OFFSET_FIELD, f"{OFFSET_FIELD} must be seconds from the start, at least 0.")
    return offset


# chunking_strategy[<key>] → (VadSettings field, type, lowest, highest)
_VAD_FIELDS = {
    "threshold": ("threshold", float, 0.0, 1.0),
    "prefix_padding_ms": ("prefix_padding_ms", int, 0, 10_000),
    "silence_duration_ms": ("silence_duration_ms", int, 0, 10_000),
}


def _chunking(fields: dict[str, list[str]]) -> VadSettings | None:
    """``chunking_strategy``: absent or ``auto`` → our default VAD; ``server_vad`` → its knobs.

    Read from the SDK's bracket fields, or from one JSON object (what curl users write).
    """
    nested = {
        key[len("chunking_strategy[") : -1]: values[-1]
        for key, values in fields.items()
        if key.startswith("chunking_strategy[") and key.endswith("]") and values
    }
    plain_values = fields.get("chunking_strategy") or []
    plain = plain_values[-1] if plain_values else None
    if plain not in (None, "", "auto"):
        try:
            decoded = json.loads(plain)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise _bad(
                "chunking_strategy",
                "chunking_strategy must be 'auto' or an object with type 'server_vad'.",
            )
        nested = {k: str(v) for k, v in decoded.items()}
    if not nested:
        return None
    if nested.get("type") != "server_vad":
        raise _bad("chunking_strategy[type]", "chunking_strategy[type] must be 'server_vad'.")
    values: dict[str, float | int] = {}
    for key, raw in nested.items():
        if key == "type":
            continue
        if key not in _VAD_FIELDS:
            raise _bad(
                f"chunking_strategy[{key}]",
                f"chunking_strategy takes type, {', '.join(_VAD_FIELDS)}; got '{key}'.",
            )
        name, kind, low, high = _VAD_FIELDS[key]
        param = f"chunking_strategy[{key}]"
        try:
            value = kind(float(raw)) if kind is int else kind(raw)
        except ValueError:
            raise _bad(param, f"{param} must be a number from {low} to {high}.") from None
        if not low <= value <= high:
            raise _bad(param, f"{param} must be a number from {low} to {high}.")
        values[name] = value
    return VadSettings(**values)  # type: ignore[arg-type]
