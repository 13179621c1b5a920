"""Cutting long files into pieces and joining their answers (asrpool_router.logic.shards)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_contract.formats import as_verbose_json, from_verbose
from asrpool_contract.transcript import Segment, Transcript, Word
from asrpool_router.logic.shards import Piece, ShardPolicy, join, plan

FRAME = 0.03
POLICY = ShardPolicy(min_audio_s=60.0, target_s=30.0, search_s=8.0)


def levels_with_pauses(total_s: float, pauses_at: list[float]) -> list[float]:
    """Loud everywhere but 0.3 s pauses at the given times."""
    frames = round(total_s / FRAME)
    out = [1000.0] * frames
    for t in pauses_at:
        for i in range(round(t / FRAME), round((t + 0.3) / FRAME)):
            out[i] = 10.0
    return out


def test_short_files_are_not_cut() -> None:
    assert plan([1.0] * round(59 / FRAME), FRAME, POLICY) == [Piece(0, 0.0, 59.01)]


def test_cuts_fall_in_the_pause_before_each_target() -> None:
    pieces = plan(levels_with_pauses(125.0, [27.0, 55.5, 84.0, 110.0]), FRAME, POLICY)
    starts = [p.start_s for p in pieces]
    assert starts[0] == 0.0
    assert starts[1] == pytest.approx(27.0, abs=0.05)
    assert starts[2] == pytest.approx(55.5, abs=0.05)
    assert starts[3] == pytest.approx(84.0, abs=0.05)
    assert all(p.seconds <= 30.0 + 15.0 for p in pieces)


def test_without_any_pause_the_cut_is_at_the_quietest_frame_then_the_earliest() -> None:
    flat = [500.0] * round(70 / FRAME)
    pieces = plan(flat, FRAME, POLICY)
    assert pieces[1].start_s == pytest.approx(22.0, abs=0.05)  # the window's first frame


@given(
    total=st.floats(0.0, 400.0),
    noise=st.lists(st.floats(0.0, 2000.0), min_size=1, max_size=50),
)
def test_pieces_cover_the_audio_exactly_once_in_order(total: float, noise: list[float]) -> None:
    frames = round(total / FRAME)
    levels = [noise[i % len(noise)] for i in range(frames)]
    pieces = plan(levels, FRAME, POLICY)
    assert pieces[0].start_s == 0.0
    assert pieces[-1].end_s == pytest.approx(frames * FRAME, abs=1e-3)
    for a, b in itertools.pairwise(pieces):
        assert a.end_s == b.start_s and a.seconds > 0
    assert [p.index for p in pieces] == list(range(len(pieces)))
    if frames * FRAME >= POLICY.min_audio_s:  # cut: no piece much longer than a window
        assert all(p.seconds <= POLICY.target_s * 1.5 + FRAME for p in pieces)


def test_join_shifts_times_by_their_piece_and_renumbers() -> None:
    first, second = Piece(0, 0.0, 28.0), Piece(1, 28.0, 50.0)

    def one(text: str, start: float, end: float) -> Transcript:
        words = [Word(" " + text, start, end, 0.9)]
        return Transcript("en", 0.0, [Segment(0, start, end, " " + text, words=words)])

    two = Transcript("en", 0.0, [Segment(0, 0.5, 1.0, " World"), Segment(1, 1.0, 2.0, " .")])
    joined = join([(second, two), (first, one("Hello.", 1.0, 3.0))])
    assert [s.id for s in joined.segments] == [0, 1, 2]
    joined = join([(second, one("World.", 0.5, 2.0)), (first, one("Hello.", 1.0, 3.0))])
    assert joined.text == "Hello. World."
    assert [(s.id, s.start, s.end) for s in joined.segments] == [(0, 1.0, 3.0), (1, 28.5, 30.0)]
    assert [w.start for s in joined.segments for w in s.words or []] == [1.0, 28.5]
    assert (joined.duration, joined.language) == (50.0, "en")


def test_a_verbose_answer_reads_back_into_the_same_transcript() -> None:
    words = [Word(" Hello", 0.0, 0.5, 1.0), Word(" there.", 0.5, 1.0, 1.0)]
    t = Transcript(
        "en",
        2.0,
        [
            Segment(0, 0.0, 1.0, " Hello there.", tokens=[1, 2], words=words),
            Segment(1, 1.2, 2.0, " Bye.", words=[Word(" Bye.", 1.2, 2.0)]),
        ],
    )
    back = from_verbose(as_verbose_json(t, True))
    assert as_verbose_json(back, True) == as_verbose_json(t, True)
    assert back.language == "en" and [len(s.words or []) for s in back.segments] == [2, 1]
