"""Validate the form fields of an OpenAI audio request into engine options.

Pure: takes the plain field values, returns options or raises
``AsrpoolError(invalid_request)`` naming the bad parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from asrpool.wire import AsrpoolError, ErrorCode

from .engine import DecodeOptions
from .formats import FORMATS

# What OpenAI clients send by default; served by whatever model this worker has.
OPENAI_DEFAULT_MODEL = "whisper-1"
# asrpool's own form field (other servers ignore it): this is a live partial, speed first.
DRAFT_FIELD = "asrpool_draft"


@dataclass(frozen=True)
class AudioRequest:
    options: DecodeOptions
    response_format: str


def _bad(param: str, message: str) -> AsrpoolError:
    return AsrpoolError(ErrorCode.INVALID_REQUEST, message, param=param)


def parse_request(fields: dict[str, list[str]], *, task: str, served_model: str) -> AudioRequest:
    """Fields as multipart gives them (name → values); ``task`` is transcribe or translate."""

    def one(name: str) -> str | None:
        values = fields.get(name) or []
        return values[-1] if values else None

    model = one("model")
    if model and model not in (served_model, OPENAI_DEFAULT_MODEL):
        raise AsrpoolError(
            ErrorCode.MODEL_NOT_FOUND,
            f"Model '{model}' is not served here; this server serves '{served_model}'.",
            param="model",
        )

    response_format = one("response_format") or "json"
    if response_format not in FORMATS:
        raise _bad(
            "response_format",
            f"response_format must be one of {', '.join(FORMATS)}; got '{response_format}'.",
        )

    temperature: float | None = None
    raw_temperature = one("temperature")
    if raw_temperature not in (None, ""):
        try:
            temperature = float(raw_temperature)
        except ValueError:
            raise _bad("temperature", "temperature must be a number between 0 and 1.") from None
        if not 0.0 <= temperature <= 1.0:
            raise _bad("temperature", "temperature must be a number between 0 and 1.")

    granularities = set(fields.get("timestamp_granularities[]", [])) | set(
        fields.get("timestamp_granularities", [])
    )
    unknown = granularities - {"word", "segment"}
    if unknown:
        raise _bad(
            "timestamp_granularities[]",
            f"timestamp_granularities[] takes 'word' and 'segment'; got {sorted(unknown)}.",
        )
    if "word" in granularities and response_format != "verbose_json":
        raise _bad(
            "timestamp_granularities[]",
            "Word timestamps need response_format=verbose_json.",
        )

    language = (one("language") or "").strip().lower() or None
    if language is not None and not (2 <= len(language) <= 3 and language.isalpha()):
        raise _bad("language", "language must be an ISO-639-1 code such as 'en' or 'zh'.")

    return AudioRequest(
        options=DecodeOptions(
            task=task,
            language=language,
            prompt=one("prompt") or None,
            temperature=temperature,
            word_timestamps="word" in granularities,
            timestamps=response_format in ("srt", "vtt", "verbose_json"),
            draft=(one(DRAFT_FIELD) or "").lower() in ("1", "true"),
        ),
        response_format=response_format,
    )
