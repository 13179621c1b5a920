"""The form of an OpenAI audio request (``/v1/audio/transcriptions`` and ``/translations``).

One model of every field (``AudioForm``), read three ways, so that a field added here is
validated, routed and documented at once:

- the worker validates the fields with it (``read_form``; ``asrpool_worker.params`` turns the
  result into decode options);
- the router reads ``model``, ``stream`` and ``response_format`` with it, and so refuses a bad
  form with the same 400 before the request takes a slot;
- ``asrpool_contract.openapi`` turns it into the documented request body of both (``AudioUpload`` is
  the form with its ``file``).

The upload itself is read by ``asrpool_contract.uploads`` (counting bytes as they stream); here only
the text fields, as multipart gives them: name → values. The openai SDK sends list and
nested fields in bracket form (``include[]=logprobs``, ``chunking_strategy[type]=server_vad``);
the bare name is read too, and ``chunking_strategy`` also as one JSON object (what curl users
and clients generated from the OpenAPI document send). An empty value counts as absent.

A refusal is ``AsrpoolError(invalid_request)`` naming the field as the SDK spells it
(``param="chunking_strategy[threshold]"``). Pure: pydantic only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
)
from pydantic.json_schema import SkipJsonSchema

from .wire import AsrpoolError, ErrorCode

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
# Formats a stream can carry: the text comes as deltas, nothing else has a streamed shape.
STREAMABLE = ("json", "text")
# asrpool's own form field (other servers ignore it): this is a live partial, speed first.
DRAFT_FIELD = "asrpool_draft"
# And this: a live session's final (an utterance the router cut at speech).
LIVE_FIELD = "asrpool_live"
DIARIZATION = "asrpool's pools transcribe; they do not tell speakers apart (no diarization)"

LanguageCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^\s*[A-Za-z]{2,3}\s*$"),
    Field(description="An ISO-639-1 code such as `en` or `zh`.", examples=["en"]),
]


class ServerVad(BaseModel):
    """``chunking_strategy`` ``server_vad``: the knobs of faster-whisper's Silero VAD pass
    (threshold, speech padding, shortest silence), with OpenAI's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["server_vad"]
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Speech probability threshold.")
    prefix_padding_ms: int = Field(
        300, ge=0, le=10_000, description="Audio kept before detected speech."
    )
    silence_duration_ms: int = Field(
        200, ge=0, le=10_000, description="The shortest silence that ends speech."
    )


def _chunking_kind(value: Any) -> str:
    return "auto" if isinstance(value, str) else "server_vad"


ChunkingStrategy = Annotated[
    Annotated[Literal["auto"], Tag("auto")] | Annotated[ServerVad, Tag("server_vad")],
    Discriminator(_chunking_kind),
]


def _array(alias: str, description: str, **limits: Any) -> Any:
    return Field((), alias=alias, description=description, **limits)


class AudioForm(BaseModel):
    """The text fields of an audio request; docs/openai.md says what each one does."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="AudioForm")

    model: str | SkipJsonSchema[None] = Field(
        None,
        description="A pool's model, one of its aliases, or one of OpenAI's names "
        "(`whisper-1`, `gpt-4o-mini-transcribe`, …) for the default pool. "
        "`GET /v1/models` lists them; any other name is 404 `model_not_found`.",
        examples=["whisper-1"],
    )
    response_format: ResponseFormat = Field(
        "json",
        description="How the transcript is rendered, as OpenAI renders it. "
        f"`diarized_json` is refused (400): {DIARIZATION}.",
    )
    stream: bool = Field(
        False,
        description="Server-sent `transcript.text.delta` events as the pool decodes, then "
        "`transcript.text.done`; with `response_format` json or text only.",
    )
    include: tuple[Literal["logprobs"], ...] = _array(
        "include[]",
        "`logprobs`: one entry per word (faster-whisper's word probabilities); "
        "with `response_format=json` only.",
    )
    chunking_strategy: ChunkingStrategy = Field(
        "auto",
        description="`auto`: asrpool's VAD pass; or a `server_vad` object (sent as JSON, or as "
        "the openai SDK sends it: `chunking_strategy[type]=server_vad`, "
        "`chunking_strategy[threshold]=0.6`, …).",
    )
    language: LanguageCode | SkipJsonSchema[None] = Field(
        None,
        description="The language of the audio. On an English-only model (`*.en`) anything "
        "but `en` is refused.",
    )
    languages: tuple[LanguageCode, ...] = _array(
        "languages[]", "Language detection picks the likeliest of these."
    )
    prompt: str = Field("", description="The initial prompt: Whisper follows its spelling.")
    keywords: tuple[str, ...] = _array("keywords[]", "Words appended to the prompt.")
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] | SkipJsonSchema[None] = Field(
        None, description="Sampling temperature; absent: Whisper's fallback schedule."
    )
    timestamp_granularities: tuple[Literal["segment", "word"], ...] = _array(
        "timestamp_granularities[]", "`word` adds word times, with `verbose_json`."
    )
    known_speaker_names: tuple[str, ...] = _array(
        "known_speaker_names[]", f"Refused when given: {DIARIZATION}.", max_length=0
    )
    known_speaker_references: tuple[str, ...] = _array(
        "known_speaker_references[]", f"Refused when given: {DIARIZATION}.", max_length=0
    )
    asrpool_draft: bool = Field(
        False,
        description="asrpool: a live partial that will be superseded: greedy decoding, "
        "no VAD pass.",
    )
    asrpool_live: bool = Field(
        False,
        description="asrpool: a live session's final, one utterance the router cut at "
        "speech: the worker may encode it on its own length (its --short-context).",
    )
    asrpool_offset: float = Field(
        0.0,
        ge=0.0,
        lt=86_400.0,
        description="asrpool: decode from here (seconds); how the router resumes a stream "
        "on another pod.",
    )

    @property
    def logprobs(self) -> bool:
        return "logprobs" in self.include

    @property
    def word_timestamps(self) -> bool:
        return "word" in self.timestamp_granularities


class AudioUpload(AudioForm):
    """The whole multipart form: the audio file and the fields."""

    model_config = ConfigDict(title="AudioUpload")

    file: bytes = Field(
        description="The audio: wav, flac, mp3, ogg/opus, webm or m4a; at most this server's "
        "`--max-upload-mb` (413 `file_too_large` past it)."
    )


def read_form(fields: Mapping[str, Sequence[str]]) -> AudioForm:
    """The form's fields (name → values, as multipart gives them), validated."""
    data: dict[str, Any] = {}
    for name, info in AudioForm.model_fields.items():
        wire = info.alias or name
        if wire.endswith("[]"):
            values = [v for key in (wire, name) for v in fields.get(key, ()) if v != ""]
            if values:
                data[wire] = values
        else:
            value = _last(fields.get(wire, ()))
            if value is not None:
                data[wire] = value
    chunking = _chunking(fields)
    if chunking is None:
        data.pop("chunking_strategy", None)
    else:
        data["chunking_strategy"] = chunking
    _refuse_what_cannot_be_done(data)
    try:
        form = AudioForm.model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc) from None
    _check_combination(form)
    return form


def _last(values: Sequence[str]) -> str | None:
    present = [v for v in values if v != ""]
    return present[-1] if present else None


def _chunking(fields: Mapping[str, Sequence[str]]) -> object:
    """The SDK's bracket fields as one object, or the plain field (JSON decoded when it is)."""
    nested = {
        key[len("chunking_strategy[") : -1]: value
        for key, values in fields.items()
        if key.startswith("chunking_strategy[") and key.endswith("]")
        if (value := _last(values)) is not None
    }
    if nested:
        return nested
    plain = _last(fields.get("chunking_strategy", ()))
    if plain is None or plain == "auto":
        return plain
    try:
        return json.loads(plain)
    except ValueError:
        return plain


def _refuse_what_cannot_be_done(data: dict[str, Any]) -> None:
    if data.get("response_format") == "diarized_json":
        raise _bad("response_format", f"response_format=diarized_json: {DIARIZATION}.")
    for wire in ("known_speaker_names[]", "known_speaker_references[]"):
        if data.get(wire):
            raise _bad(wire, f"{wire}: {DIARIZATION}.")


def _check_combination(form: AudioForm) -> None:
    if form.stream and form.response_format not in STREAMABLE:
        raise _bad(
            "stream",
            f"stream=true works with response_format json or text; got '{form.response_format}'.",
        )
    if form.logprobs and form.response_format != "json":
        raise _bad("include[]", "include[]=logprobs works with response_format=json only.")
    if form.word_timestamps and form.response_format != "verbose_json":
        raise _bad(
            "timestamp_granularities[]", "Word timestamps need response_format=verbose_json."
        )


def _bad(param: str, message: str) -> AsrpoolError:
    return AsrpoolError(ErrorCode.INVALID_REQUEST, message, param=param)


# --- a pydantic error, said for the user ------------------------------------------------

_NUMBER_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
        "float_parsing",
        "float_type",
        "int_parsing",
        "int_type",
        "int_from_float",
    }
)
_CHUNKING_TAGS = frozenset({"auto", "server_vad"})


def _refusal(exc: ValidationError) -> AsrpoolError:
    # The deepest error is the most specific one (a field of server_vad, not the union).
    error = max(exc.errors(), key=lambda e: len(e["loc"]))
    # The location names the field, then union members and list indexes, and for
    # chunking_strategy a key of the object: only the names are the param.
    loc = error["loc"]
    top = str(loc[0]) if loc else "form"
    inner = [
        str(part)
        for part in loc[1:]
        if top == "chunking_strategy" and isinstance(part, str) and part not in _CHUNKING_TAGS
    ]
    param = top + "".join(f"[{part}]" for part in inner)
    got = error.get("input")
    shown = f"; got {got!r}" if isinstance(got, str | int | float) else ""
    kind = error["type"]
    if top == "chunking_strategy" and not inner:
        return _bad(param, "chunking_strategy must be 'auto' or an object with type 'server_vad'.")
    if kind == "extra_forbidden":
        keys = ", ".join(ServerVad.model_fields)
        return _bad(param, f"chunking_strategy takes {keys}; got '{inner[-1]}'.")
    if kind in ("literal_error", "missing"):
        expected = (error.get("ctx") or {}).get("expected")
        if expected is None and inner == ["type"]:
            expected = "'server_vad'"
        return _bad(param, f"{param} must be {expected or 'given'}{shown}.")
    if kind in _NUMBER_ERRORS:
        low, high, whole = _bounds(top, inner)
        what = "a whole number" if whole else "a number"
        return _bad(param, f"{param} must be {what} from {low:g} to {high:g}{shown}.")
    if kind == "bool_parsing":
        return _bad(param, f"{param} must be true or false{shown}.")
    if kind == "string_pattern_mismatch":
        return _bad(param, f"{param} must be an ISO-639-1 code such as 'en' or 'zh'{shown}.")
    return _bad(param, f"{param}: {error['msg']}{shown}.")


@functools.cache
def _form_schema() -> dict[str, Any]:
    return AudioForm.model_json_schema()


def _bounds(top: str, inner: list[str]) -> tuple[float, float, bool]:
    """(lowest, highest, whole numbers only) of a numeric field, from its own constraints."""
    schema = _form_schema()
    prop = schema["properties"].get(top, {})
    if inner:
        prop = schema["$defs"]["ServerVad"]["properties"].get(inner[-1], {})
    for option in prop.get("anyOf", [prop]):
        if "minimum" in option or "maximum" in option or "exclusiveMaximum" in option:
            prop = option
    high = prop.get("maximum", prop.get("exclusiveMaximum", float("inf")))
    return float(prop.get("minimum", 0.0)), float(high), prop.get("type") == "integer"
