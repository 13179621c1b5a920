"""What a transcription produced, as plain data (the engine fills it, formats render it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    seek: int = 0
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: list[Word] | None = None


@dataclass(frozen=True)
class Transcript:
    language: str
    duration: float
    segments: list[Segment]
    task: str = "transcribe"

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


def shifted(segment: Segment, offset: float, index: int) -> Segment:
    """The segment numbered ``index``, its times (and its words') moved by ``offset``."""
    return replace(
        segment,
        id=index,
        start=segment.start + offset,
        end=segment.end + offset,
        words=None
        if segment.words is None
        else [replace(w, start=w.start + offset, end=w.end + offset) for w in segment.words],
    )
