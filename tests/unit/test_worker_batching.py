"""The batching policy (worker/asrpool_worker/batching.py): tables, and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_worker.batching import (
    BatchPolicy,
    Dispatch,
    Hold,
    Idle,
    Reason,
    Waiting,
    next_batch,
    prompt_layouts,
    split_after_oom,
)

POLICY = BatchPolicy(max_batch=3, window_s=0.010)


def w(key: str, since: float) -> Waiting:
    return Waiting(key, since)


@pytest.mark.parametrize(
    ("waiting", "now", "expected", "decision"),
    [
        # Nothing waits: sleep until something does, whatever is on its way.
        ([], 0.0, 0, Idle()),
        ([], 0.0, 5, Idle()),
        # A lone request with nothing else on its way goes at once, not after the window.
        ([w("a", 1.0)], 1.0, 0, Dispatch((0,), Reason.ALL_ARRIVED)),
        # Something is on its way: hold the leader until its window ends...
        ([w("a", 1.0)], 1.0, 1, Hold(1.010)),
        ([w("a", 1.0)], 1.009, 2, Hold(1.010)),
        # ...and no longer, even if more are still on their way.
        ([w("a", 1.0)], 1.010, 2, Dispatch((0,), Reason.WINDOW)),
        ([w("a", 1.0), w("a", 1.004)], 1.5, 1, Dispatch((0, 1), Reason.WINDOW)),
        # The last one on its way arrived: go without waiting out the window.
        ([w("a", 1.0), w("a", 1.002)], 1.002, 0, Dispatch((0, 1), Reason.ALL_ARRIVED)),
        # Full: go at once, even with more on their way; the rest wait for the next lane.
        (
            [w("a", 1.0), w("a", 1.001), w("a", 1.002), w("a", 1.003)],
            1.003,
            4,
            Dispatch((0, 1, 2), Reason.FULL),
        ),
        # Only windows with the leader's settings join it, oldest first...
        (
            [w("a", 1.0), w("b", 1.001), w("a", 1.002), w("b", 1.003)],
            1.003,
            0,
            Dispatch((0, 2), Reason.ALL_ARRIVED),
        ),
        # ...and another key's windows never fill the leader's batch.
        ([w("a", 1.0), w("b", 1.001), w("b", 1.002), w("b", 1.003)], 1.003, 1, Hold(1.010)),
        # The leader is the oldest: a newer key waits its turn (no starvation).
        (
            [w("b", 0.5), w("a", 1.0), w("a", 1.0), w("a", 1.0)],
            1.0,
            0,
            Dispatch((0,), Reason.ALL_ARRIVED),
        ),
    ],
)
def test_next_batch(waiting, now, expected, decision):
    assert next_batch(waiting, now=now, expected=expected, policy=POLICY) == decision


def test_a_zero_window_never_holds():
    policy = BatchPolicy(max_batch=8, window_s=0.0)
    assert next_batch([w("a", 1.0)], now=1.0, expected=3, policy=policy) == Dispatch(
        (0,), Reason.WINDOW
    )


def test_max_batch_one_sends_every_window_alone():
    policy = BatchPolicy(max_batch=1, window_s=1.0)
    assert next_batch([w("a", 1.0), w("a", 1.0)], now=1.0, expected=3, policy=policy) == Dispatch(
        (0,), Reason.FULL
    )


@pytest.mark.parametrize(("max_batch", "window_s"), [(0, 0.01), (-1, 0.01), (4, -0.001)])
def test_nonsense_policies_are_refused(max_batch, window_s):
    with pytest.raises(ValueError):
        BatchPolicy(max_batch=max_batch, window_s=window_s)


waitings = st.lists(
    st.builds(Waiting, st.sampled_from("abc"), st.floats(0, 1, allow_nan=False)), max_size=12
).map(lambda ws: sorted(ws, key=lambda x: x.since))


@given(
    waitings,
    st.floats(0, 2, allow_nan=False),
    st.integers(0, 4),
    st.integers(1, 5),
    st.floats(0, 0.05, allow_nan=False),
)
def test_a_decision_is_bounded_fair_and_never_waits_past_the_window(
    waiting, now, expected, max_batch, window_s
):
    now = max([now, *(x.since for x in waiting)])  # the clock never runs behind an arrival
    policy = BatchPolicy(max_batch=max_batch, window_s=window_s)
    decision = next_batch(waiting, now=now, expected=expected, policy=policy)
    if not waiting:
        assert decision == Idle()
        return
    if isinstance(decision, Hold):
        # Only while someone may still join, and never past the leader's window.
        assert expected > 0
        assert now < decision.until == waiting[0].since + window_s
        return
    assert isinstance(decision, Dispatch)
    members = decision.members
    assert members[0] == 0  # the oldest always goes first
    assert 1 <= len(members) <= max_batch
    assert list(members) == sorted(set(members))
    assert {waiting[i].key for i in members} == {waiting[0].key}


def test_prompt_layouts_group_by_start_of_transcript_in_first_seen_order():
    assert prompt_layouts([]) == []
    assert prompt_layouts([3, 3, 3]) == [[0, 1, 2]]
    assert prompt_layouts([0, 5, 0, 9, 5]) == [[0, 2], [1, 4], [3]]


def test_an_oom_splits_a_batch_into_singles_and_gives_up_on_one():
    assert split_after_oom(["a", "b", "c"]) == [["a"], ["b"], ["c"]]
    assert split_after_oom(["a"]) == []
