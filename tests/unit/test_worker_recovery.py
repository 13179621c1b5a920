"""The OOM recovery tracker: which OOMs count, when the worker drains, reloads, serves again."""

from __future__ import annotations

import pytest

from asrpool_worker.recovery import DecodeResult, OomRecovery, RecoveryState, Step

OK, OOM, OTHER = DecodeResult.OK, DecodeResult.OOM, DecodeResult.OTHER
SERVING, DRAINING, RELOADING, FAILED = (
    RecoveryState.SERVING,
    RecoveryState.DRAINING,
    RecoveryState.RELOADING,
    RecoveryState.FAILED,
)


def alone(result: DecodeResult) -> list[tuple[str, ...]]:
    """One decode with nothing else in flight."""
    return [("begin", "x"), ("end", "x", result)]


def run(tracker: OomRecovery, script: list[tuple[str, ...]]) -> list[Step]:
    """Play ``script``: ("begin", name) | ("end", name, result) | ("reloaded", ok)."""
    tickets: dict[str, int] = {}
    steps: list[Step] = []
    for event in script:
        if event[0] == "begin":
            tickets[event[1]] = tracker.begin()
        elif event[0] == "end":
            steps.append(tracker.end(tickets.pop(event[1]), DecodeResult(event[2])))
        else:
            tracker.reloaded(event[1] == "ok")
    return steps


CASES = [
    # (name, threshold, script, state, lone OOMs, steps that started recovery, reload steps)
    ("two lone OOMs stay under three", 3, alone(OOM) * 2, SERVING, 2, 0, 0),
    ("three lone OOMs drain and reload at once", 3, alone(OOM) * 3, RELOADING, 3, 1, 1),
    ("a success resets the count", 3, alone(OOM) * 2 + alone(OK) + alone(OOM), SERVING, 1, 0, 0),
    (
        "an OOM shared with another decode neither counts nor resets",
        3,
        alone(OOM) * 2
        + [("begin", "a"), ("begin", "b"), ("end", "a", "oom"), ("end", "b", "other")]
        + alone(OOM),
        RELOADING,
        3,
        1,
        1,
    ),
    (
        "a decode that overlapped another earlier is not alone when it fails",
        1,
        [("begin", "a"), ("begin", "b"), ("end", "b", "ok"), ("end", "a", "oom")],
        SERVING,
        0,
        0,
        0,
    ),
    (
        "a success shared with another decode still resets",
        3,
        alone(OOM) * 2 + [("begin", "a"), ("begin", "b"), ("end", "a", "ok"), ("end", "b", "ok")],
        SERVING,
        0,
        0,
        0,
    ),
    ("other errors change nothing", 2, alone(OOM) + alone(OTHER) + alone(OOM), RELOADING, 2, 1, 1),
    ("threshold 0 never recovers", 0, alone(OOM) * 10, SERVING, 10, 0, 0),
    (
        "a good reload serves again with the count reset",
        1,
        [*alone(OOM), ("reloaded", "ok")],
        SERVING,
        0,
        1,
        1,
    ),
    ("a failed reload stays failed", 1, [*alone(OOM), ("reloaded", "failed")], FAILED, 1, 1, 1),
    (
        "after a good reload the count starts from zero",
        2,
        alone(OOM) * 2 + [("reloaded", "ok")] + alone(OOM),
        SERVING,
        1,
        1,
        1,
    ),
]


@pytest.mark.parametrize(
    ("threshold", "script", "state", "ooms", "started", "reloads"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_recovery_table(threshold, script, state, ooms, started, reloads):  # type: ignore[no-untyped-def]
    tracker = OomRecovery(threshold)
    steps = run(tracker, script)
    assert tracker.state is state
    assert tracker.lone_ooms == ooms
    assert sum(s.started for s in steps) == started
    assert sum(s.reload for s in steps) == reloads
    assert tracker.in_flight == 0


def test_a_trip_refuses_new_decodes_until_the_reload_ends():
    tracker = OomRecovery(1)
    assert tracker.end(tracker.begin(), OOM) == Step(started=True, reload=True)
    assert not tracker.admits and tracker.recovering
    with pytest.raises(ValueError):
        tracker.begin()  # the shell checks ``admits`` first; starting anyway is a bug
    tracker.reloaded(True)
    assert tracker.admits and not tracker.recovering


def test_draining_reloads_only_when_the_last_decode_in_flight_ends():
    # A lone OOM leaves nothing in flight, so the public path drains at once; this is the
    # guarantee behind it (never reload under a decode), set up directly.
    tracker = OomRecovery(1, state=DRAINING)
    tracker._in_flight.update({10: True, 11: True})
    assert tracker.end(10, OK) == Step()
    assert tracker.state is DRAINING
    assert tracker.end(11, OOM) == Step(reload=True)
    assert tracker.state is RELOADING
    assert tracker.end(11, OK) == Step()  # ending twice is harmless


def test_reloaded_outside_a_reload_is_a_bug():
    with pytest.raises(ValueError):
        OomRecovery().reloaded(True)


def test_a_negative_threshold_is_refused():
    with pytest.raises(ValueError):
        OomRecovery(-1)
