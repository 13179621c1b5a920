"""Render a Transcript in each OpenAI ``response_format``: json, text, srt, vtt, verbose_json.

Pure functions; the worker's route picks one by name and sets the media type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .audio_answers import (
    MEDIA_TYPES,
    DurationUsage,
    Logprob,
    Transcription,
    TranscriptionVerbose,
)
from .transcript import Segment, Transcript, Word

# OpenAI's verbose_json names the language in words; codes we do not know pass through.
_LANGUAGE_NAMES = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "fr": "french",
    "ja": "japanese",
    "ko": "korean",
    "ru": "russian",
    "pt": "portuguese",
    "it": "italian",
    "nl": "dutch",
    "ar": "arabic",
    "hi": "hindi",
    "tr": "turkish",
    "pl": "polish",
}


def usage(transcript: Transcript) -> DurationUsage:
    # OpenAI bills whole seconds of input audio.
    return {"type": "duration", "seconds": math.ceil(transcript.duration)}


def _timestamp(seconds: float, decimal: str) -> str:
    ms = max(round(seconds * 1000), 0)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def as_json(t: Transcript, words: bool) -> Transcription:
    return {"text": t.text, "usage": usage(t)}


def logprobs(segments: Iterable[Segment]) -> list[Logprob]:
    """OpenAI's ``logprobs`` list, one entry per word: faster-whisper scores words (the mean
    of their tokens' probabilities, from its alignment pass), not single tokens.
    """
    return [
        {
            "token": w.word,
            "logprob": round(math.log(max(w.probability, 1e-12)), 6),
            "bytes": list(w.word.encode()),
        }
        for s in segments
        for w in (s.words or [])
    ]


def as_text(t: Transcript, words: bool) -> str:
    return t.text + "\n" if t.text else ""


def as_srt(t: Transcript, words: bool) -> str:
    blocks = []
    spoken = [s for s in t.segments if s.text.strip()]
    for n, s in enumerate(spoken, start=1):
        blocks.append(
            f"{n}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        )
    return "\n".join(blocks)


def as_vtt(t: Transcript, words: bool) -> str:
    blocks = ["WEBVTT\n"]
    for s in t.segments:
        if s.text.strip():
            blocks.append(
                f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n"
            )
    return "\n".join(blocks)


def as_verbose_json(t: Transcript, words: bool) -> TranscriptionVerbose:
    body: TranscriptionVerbose = {
        "task": t.task,
        "language": _LANGUAGE_NAMES.get(t.language, t.language),
        "duration": round(t.duration, 3),
        "text": t.text,
        "segments": [
            {
                "id": s.id,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": s.tokens,
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in t.segments
        ],
        "usage": usage(t),
    }
    if words:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
            for s in t.segments
            for w in (s.words or [])
        ]
    return body


def from_verbose(body: dict[str, Any]) -> Transcript:
    """A ``verbose_json`` answer read back (its words put back in their segments)."""
    names = {name: code for code, name in _LANGUAGE_NAMES.items()}
    language = str(body.get("language") or "")
    segments = [
        Segment(
            id=int(s.get("id", i)),
            seek=int(s.get("seek", 0)),
            start=float(s.get("start", 0.0)),
            end=float(s.get("end", 0.0)),
            text=str(s.get("text", "")),
            tokens=[int(t) for t in s.get("tokens") or []],
            temperature=float(s.get("temperature") or 0.0),
            avg_logprob=float(s.get("avg_logprob") or 0.0),
            compression_ratio=float(s.get("compression_ratio") or 0.0),
            no_speech_prob=float(s.get("no_speech_prob") or 0.0),
            words=None if "words" not in body else [],
        )
        for i, s in enumerate(body.get("segments") or [])
    ]
    for w in body.get("words") or []:
        word = Word(str(w.get("word", "")), float(w.get("start", 0.0)), float(w.get("end", 0.0)))
        middle = (word.start + word.end) / 2
        home = next((s for s in segments if s.start <= middle <= s.end), None)
        home = home or min(segments, key=lambda s: abs(s.start - middle), default=None)
        if home is not None and home.words is not None:
            # Spoken words keep their leading space, as the engine gives them.
            home.words.append(Word(" " + word.word, word.start, word.end, word.probability))
    return Transcript(
        language=names.get(language, language),
        duration=float(body.get("duration") or 0.0),
        segments=segments,
        task=str(body.get("task") or "transcribe"),
    )


@dataclass(frozen=True)
class Format:
    render: Callable[[Transcript, bool], Any]
    media_type: str  # application/json bodies are dicts; the others are text


_RENDER: dict[str, Callable[[Transcript, bool], Any]] = {
    "json": as_json,
    "text": as_text,
    "srt": as_srt,
    "vtt": as_vtt,
    "verbose_json": as_verbose_json,
}
# One for each asrpool_contract.audio_form.RESPONSE_FORMATS (a unit test holds them equal).
FORMATS: dict[str, Format] = {
    name: Format(render, MEDIA_TYPES[name]) for name, render in _RENDER.items()
}
