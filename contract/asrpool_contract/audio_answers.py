"""What an audio request answers with, in each ``response_format``: OpenAI's shapes.

The worker renders these (``asrpool_contract.formats``, typed with them, so mypy holds it to
them); the router relays them; ``asrpool_contract.openapi`` documents both from them. The streamed
answer's events live in ``asrpool_contract.transcript_stream``.

Pure: types and constants only.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict  # pydantic reads these on Python 3.11

# The media type of each response_format's answer (``asrpool_contract.audio_form.ResponseFormat``).
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "verbose_json": "application/json",
}


class DurationUsage(TypedDict):
    """What a plain answer's audio cost: whole seconds, as OpenAI bills them."""

    type: Literal["duration"]
    seconds: int


class Logprob(TypedDict):
    """One word (not one token: faster-whisper scores words) and its log probability."""

    token: str
    logprob: float
    bytes: list[int]


class Transcription(TypedDict):
    """``response_format=json``."""

    text: str
    usage: DurationUsage
    logprobs: NotRequired[list[Logprob]]


class VerboseSegment(TypedDict):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseWord(TypedDict):
    word: str
    start: float
    end: float


class TranscriptionVerbose(TypedDict):
    """``response_format=verbose_json``; ``words`` with ``timestamp_granularities[]=word``."""

    task: str
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment]
    usage: DurationUsage
    words: NotRequired[list[VerboseWord]]


class Model(TypedDict):
    """OpenAI's model object; ``asrpool_pool`` says which pool the name reaches, and
    ``asrpool_kind`` what the name is: ``pool``, ``alias`` or ``openai`` (one of OpenAI's
    names for the default pool). A worker lists only the model it serves."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    asrpool_pool: NotRequired[str]
    asrpool_kind: NotRequired[str]


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[Model]
