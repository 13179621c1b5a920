"""Long files across the pool: where to cut one upload into pieces, and how to join them.

A long file decoded by one pod leaves the others idle while it runs (a 4-minute file on a
4-pod pool: one busy, three waiting). The router cuts it into pieces of about
``target_s`` (Whisper's own 30 s window) at the quietest moment near each cut, so no word
is split, sends them to as many pods as have room at batch priority (interactive work
still goes first), and joins the answers: segments and words shifted by their piece's
start, so the result has the shape of an answer from one pod in every format.

``plan(levels, frame_s, policy)`` takes the audio's frame energies (RMS per frame) and
returns the pieces; ``join`` merges the pieces' transcripts. Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from asrpool_contract.transcript import Segment, Transcript, shifted


@dataclass(frozen=True)
class ShardPolicy:
    """When and how an upload is cut."""

    # Files at least this long are cut; shorter ones go to one pod whole.
    min_audio_s: float = 60.0
    # The length pieces aim at: Whisper decodes 30 s windows.
    target_s: float = 30.0
    # A cut may move this far back from the target, to the quietest frame.
    search_s: float = 8.0

    def __post_init__(self) -> None:
        if not 0 < self.search_s < self.target_s <= self.min_audio_s:
            raise ValueError("shard policy needs 0 < search_s < target_s <= min_audio_s")


@dataclass(frozen=True)
class Piece:
    index: int
    start_s: float
    end_s: float

    @property
    def seconds(self) -> float:
        return self.end_s - self.start_s


def plan(levels: Sequence[float], frame_s: float, policy: ShardPolicy) -> list[Piece]:
    """The pieces, in order, covering the audio exactly once (no gap, no overlap).

    ``levels`` are the frames' loudness (any scale); each cut is at the quietest frame in
    the ``search_s`` before the target length, the earliest of equals, so a pause wins over
    a word. The last piece takes what is left (up to ``target_s`` plus less than a piece).
    """
    total_s = len(levels) * frame_s
    if total_s < policy.min_audio_s:
        return [Piece(0, 0.0, total_s)]
    target = max(1, round(policy.target_s / frame_s))
    search = max(1, round(policy.search_s / frame_s))
    cuts: list[int] = []
    start = 0
    while len(levels) - start > target + target // 2:
        window = range(start + target - search, start + target)
        cut = min(window, key=lambda i: (levels[i], i))
        cuts.append(cut)
        start = cut
    bounds = [0, *cuts, len(levels)]
    return [
        Piece(i, round(a * frame_s, 3), round(b * frame_s, 3))
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


def join(pieces: Sequence[tuple[Piece, Transcript]]) -> Transcript:
    """One transcript from the pieces' own (each timed from its piece's start)."""
    ordered = sorted(pieces, key=lambda p: p[0].index)
    segments: list[Segment] = []
    for piece, transcript in ordered:
        base = len(segments)
        segments += [
            shifted(seg, piece.start_s, base + n) for n, seg in enumerate(transcript.segments)
        ]
    first = ordered[0][1] if ordered else None
    return Transcript(
        language=first.language if first else "",
        duration=max((p.end_s for p, _ in ordered), default=0.0),
        segments=segments,
        task=first.task if first else "transcribe",
    )
