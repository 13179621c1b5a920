"""Decodes on a short encoder context: its length (drafts, finals), token budget, loops trimmed."""

from __future__ import annotations

import pytest

from asrpool_worker import drafts

RATE = 16_000


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [
        (0.5, 600),  # the floor: six seconds of context
        (4.0, 600),
        (5.0, 600),  # speech + one second of silence: exactly the floor
        (5.5, 800),  # 6.5 s, rounded up to whole two-second buckets
        (7.0, 800),
        (12.0, 1400),
        (28.5, 3000),  # never more than Whisper's window
        (40.0, 3000),
    ],
)
def test_a_draft_encodes_its_audio_and_a_pad_in_buckets_within_floor_and_window(seconds, frames):
    assert drafts.context_frames(int(seconds * RATE)) == frames
    assert drafts.context_samples(int(seconds * RATE)) == frames * 160


def test_the_context_is_always_even_for_the_encoders_stride():
    assert all(drafts.context_frames(n) % 2 == 0 for n in range(0, 40 * RATE, 1237))


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [
        (0.5, 2000),  # the floor: twenty seconds of context
        (18.0, 2000),
        (18.1, 2100),  # whole seconds (so finals of a length share a batch), two of them pad
        (20.0, 2200),
        (27.9, None),  # no room left for the pad: the whole window
        (28.0, None),
        (40.0, None),
    ],
)
def test_a_final_encodes_its_whole_seconds_and_two_more_within_floor_and_window(seconds, frames):
    assert drafts.final_context_frames(int(seconds * RATE)) == frames


def test_the_token_budget_grows_with_the_audio_up_to_the_decoders_limit():
    assert drafts.token_budget(0) == 8
    assert drafts.token_budget(5 * RATE) == 38
    assert drafts.token_budget(600 * RATE) == 448


def test_a_batch_max_length_fits_the_longest_prompt_and_budget_of_any_draft_of_its_context():
    longest_prompt = 1 + drafts.PROMPT_TOKENS + drafts.PROMPT_FRAME
    for samples in range(0, 30 * RATE + 1, 997):  # a draft is at most one window
        shared = drafts.batch_max_length(drafts.context_frames(samples))
        assert longest_prompt + drafts.token_budget(samples) <= shared <= drafts.MAX_TOKENS


@pytest.mark.parametrize(
    ("draft", "kept"),
    [
        (
            "The children played football in the children played football in",
            "The children played football in",
        ),
        ("She borrowed three books, three books, three", "She borrowed three books,"),
        ("Turn left at the corner. Turn left at the", "Turn left at the corner."),
        ("We will open a new office in the city next spring.", None),
        ("the the", None),  # too short to judge
        ("", None),
    ],
)
def test_a_draft_that_starts_over_is_cut_where_it_repeats(draft, kept):
    assert drafts.trim_repetition(draft) == (draft if kept is None else kept)
