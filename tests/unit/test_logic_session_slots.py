"""Live-session caps: in total and per API key, and every close gives its slot back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_router.logic import realtime_protocol as proto
from asrpool_router.logic.session_slots import SessionCap, SessionRefused, SessionSlots


def test_the_per_key_cap_refuses_a_key_while_others_still_get_in():
    slots = SessionSlots(max_total=10, max_per_key=2)
    assert slots.open("a") is None and slots.open("a") is None
    assert slots.open("a") == SessionRefused(SessionCap.PER_KEY, 2)
    assert slots.open("b") is None
    assert (slots.open_total, slots.open_for("a"), slots.open_for("b")) == (3, 2, 1)


def test_the_total_cap_refuses_every_key():
    slots = SessionSlots(max_total=2, max_per_key=5)
    assert slots.open("a") is None and slots.open("b") is None
    assert slots.open("c") == SessionRefused(SessionCap.TOTAL, 2)
    assert slots.open_for("c") == 0


def test_without_auth_only_the_total_applies():
    slots = SessionSlots(max_total=3, max_per_key=1)
    assert [slots.open(None) for _ in range(3)] == [None, None, None]
    assert slots.open(None) == SessionRefused(SessionCap.TOTAL, 3)


def test_closing_frees_the_slot_for_the_same_key_and_forgets_idle_keys():
    slots = SessionSlots(max_total=1, max_per_key=1)
    assert slots.open("a") is None
    slots.close("a")
    assert slots.open("a") is None
    slots.close("a")
    assert slots.open_total == 0 and "a" not in slots._per_key
    with pytest.raises(RuntimeError):
        slots.close("a")


@pytest.mark.parametrize(
    ("cap", "words"),
    [(SessionCap.TOTAL, "server already runs 7 live sessions"), (SessionCap.PER_KEY, "API key")],
)
def test_a_refusal_is_an_error_event_saying_how_many_and_what_to_do(cap, words):
    event = proto.session_limit_error(cap, 7)
    assert event["type"] == "error"
    error = event["error"]
    assert error["code"] == "session_limit_reached" and error["type"] == "rate_limit_error"
    assert words in error["message"] and "7" in error["message"]
    assert "retry later" in error["message"]


def test_the_idle_timeout_event_says_how_long_and_what_to_do():
    error = proto.idle_timeout_error(2.5)["error"]
    assert error["code"] == "session_idle_timeout" and "2.5 s" in error["message"]
    assert "new session" in error["message"]


# One step: open a session for a key (0-2, 3 = no key), or close the n-th open one.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 3)),
        st.tuples(st.just("close"), st.integers(0, 9)),
    ),
    max_size=60,
)


@given(max_total=st.integers(1, 6), max_per_key=st.integers(1, 4), steps=steps)
def test_caps_hold_and_closing_every_admitted_session_returns_to_zero(
    max_total, max_per_key, steps
):
    slots = SessionSlots(max_total=max_total, max_per_key=max_per_key)
    admitted: list[str | None] = []
    for action, n in steps:
        if action == "open":
            key = None if n == 3 else f"k{n}"
            if slots.open(key) is None:
                admitted.append(key)
        elif admitted:
            slots.close(admitted.pop(n % len(admitted)))
        assert slots.open_total == len(admitted) <= max_total
        for key in {k for k in admitted if k is not None}:
            assert slots.open_for(key) == admitted.count(key) <= max_per_key
    for key in admitted:
        slots.close(key)
    assert slots.open_total == 0 and not slots._per_key
