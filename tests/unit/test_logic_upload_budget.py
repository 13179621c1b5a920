"""The spool budget: what all held uploads may take at once, and that every hold gives it back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_router.logic.upload_budget import SpoolBudget


def test_takes_fit_until_the_cap_and_a_refused_take_holds_nothing():
    budget = SpoolBudget(limit_bytes=100)
    a, b = budget.hold(), budget.hold()
    assert a.take(60) and b.take(40)
    assert not b.take(1)
    assert (budget.held_bytes, a.bytes, b.bytes, budget.refused) == (100, 60, 40, 1)


def test_release_gives_back_everything_once_even_when_called_again():
    budget = SpoolBudget(limit_bytes=100)
    a = budget.hold()
    assert a.take(30) and a.take(30)
    a.release()
    a.release()
    assert (budget.held_bytes, budget.holds) == (0, 0)
    assert budget.hold().take(100)


def test_a_released_hold_cannot_take_again():
    budget = SpoolBudget(limit_bytes=100)
    a = budget.hold()
    a.release()
    with pytest.raises(RuntimeError):
        a.take(1)
    with pytest.raises(ValueError):
        budget.hold().take(-1)


def test_zero_means_no_cap_but_the_bytes_are_still_counted():
    budget = SpoolBudget(limit_bytes=0)
    a = budget.hold()
    assert a.take(10**12)
    assert budget.held_bytes == 10**12
    a.release()
    assert budget.held_bytes == 0


def test_the_retry_after_reaches_the_hold():
    assert SpoolBudget(limit_bytes=1, retry_after_s=7.0).hold().retry_after_s == 7.0


# One step: (which hold, how many bytes to take, or None to release it).
steps = st.lists(
    st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 60))), max_size=60
)


@given(limit=st.integers(1, 200), steps=steps)
def test_the_cap_is_never_passed_and_releasing_every_hold_returns_to_zero(limit, steps):
    budget = SpoolBudget(limit_bytes=limit)
    holds = [budget.hold() for _ in range(5)]
    released = [False] * 5
    for index, n in steps:
        if n is None:
            holds[index].release()
            released[index] = True
        elif not released[index]:
            before = budget.held_bytes
            ok = holds[index].take(n)
            assert ok == (before + n <= limit)
            assert budget.held_bytes == before + (n if ok else 0)
        assert budget.held_bytes <= limit
        assert budget.held_bytes == sum(h.bytes for h in holds)
        assert budget.holds == released.count(False)
    for h in holds:
        h.release()
    assert (budget.held_bytes, budget.holds) == (0, 0)
