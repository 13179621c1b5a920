"""Load + history → replicas: up at once (bounded), down only after a quiet window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_operator.logic.autoscale import PoolLoad, Recommendation, decide
from asrpool_operator.logic.spec import Autoscaling

POLICY = Autoscaling(min_replicas=1, max_replicas=10, scale_down_stabilization_s=300)
PER_POD = 2


def at(t: float, n: int) -> Recommendation:
    return Recommendation(at=t, replicas=n)


CASES = [
    # (name, policy, current, load, history, now, replicas, reason)
    ("idle at the minimum", POLICY, 1, PoolLoad(0, 0), [at(0, 1)], 10, 1, "Unchanged"),
    ("busy slots ask for pods", POLICY, 1, PoolLoad(in_flight=6), [at(0, 1)], 10, 3, "ScaledUp"),
    ("exactly at target stays", POLICY, 3, PoolLoad(in_flight=6), [at(0, 3)], 10, 3, "Unchanged"),
    ("a queue past tolerance adds a pod per perPod waiting", POLICY, 2,
     PoolLoad(in_flight=4, queue_depth=5), [at(0, 2)], 10, 5, "ScaledUp"),
    ("a tolerated queue adds nothing", Autoscaling(max_replicas=10, target_queue_depth=6), 2,
     PoolLoad(in_flight=4, queue_depth=5), [at(0, 2)], 10, 2, "Unchanged"),
    ("a lower in-flight target scales earlier", Autoscaling(max_replicas=10,
     target_in_flight_per_pod=1.0), 2, PoolLoad(in_flight=4), [at(0, 2)], 10, 4, "ScaledUp"),
    ("never above the maximum", POLICY, 8, PoolLoad(in_flight=100), [at(0, 8)], 10, 10, "ScaledUp"),
    ("up at most doubles (or +4)", Autoscaling(max_replicas=100), 10, PoolLoad(in_flight=200),
     [at(0, 10)], 10, 20, "ScaledUp"),
    ("up from one by at most four", Autoscaling(max_replicas=100), 1, PoolLoad(in_flight=200),
     [at(0, 1)], 10, 5, "ScaledUp"),
    ("a lull within the window keeps the pods", POLICY, 5, PoolLoad(0, 0),
     [at(0, 5), at(100, 5)], 200, 5, "Unchanged"),
    ("down to the window's highest recommendation", POLICY, 5, PoolLoad(0, 0),
     [at(0, 5), at(100, 3)], 350, 3, "ScaledDown"),
    ("down to the minimum after a quiet window", POLICY, 5, PoolLoad(0, 0),
     [at(0, 5), at(100, 1)], 450, 1, "ScaledDown"),
    ("a fresh history waits a whole window before going down", POLICY, 5, PoolLoad(0, 0),
     [], 1000, 5, "Unchanged"),
    ("no metrics, no change", POLICY, 4, None, [at(0, 4)], 10, 4, "NoMetrics"),
    ("no metrics, still brought into range", POLICY, 14, None, [at(0, 14)], 10, 10, "OutOfRange"),
    ("below the minimum comes up", Autoscaling(min_replicas=3, max_replicas=5), 0, PoolLoad(0, 0),
     [], 10, 3, "ScaledUp"),
    ("above the maximum comes down at once", POLICY, 14, PoolLoad(0, 0), [at(0, 14)], 10, 10,
     "OutOfRange"),
    ("scaled to zero, a first request wakes a pod", Autoscaling(min_replicas=0, max_replicas=5),
     0, PoolLoad(queue_depth=1), [at(0, 0)], 10, 1, "ScaledUp"),
    ("scaled to zero, even a tolerated queue wakes a pod", Autoscaling(
     min_replicas=0, max_replicas=5, target_queue_depth=4), 0, PoolLoad(queue_depth=2),
     [at(0, 0)], 10, 1, "ScaledUp"),
    ("scaled to zero and idle stays at zero", Autoscaling(min_replicas=0, max_replicas=5), 0,
     PoolLoad(0, 0), [at(0, 0)], 10, 0, "Unchanged"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "current", "load", "history", "now", "replicas", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(
    policy: Autoscaling,
    current: int,
    load: PoolLoad | None,
    history: list[Recommendation],
    now: float,
    replicas: int,
    reason: str,
) -> None:
    decision = decide(policy, PER_POD, current, load, history, now)
    assert (decision.replicas, decision.reason) == (replicas, reason)


def test_the_message_says_what_load_moved_the_pool() -> None:
    d = decide(POLICY, PER_POD, 1, PoolLoad(in_flight=6, queue_depth=3), [at(0, 1)], 10)
    assert d.message == (
        "1 → 3 pods: 6 requests in flight (target 2 a pod), 3 queued (tolerated 0)"
    )


def test_history_forgets_recommendations_older_than_the_window() -> None:
    d = decide(POLICY, PER_POD, 2, PoolLoad(in_flight=4), [at(0, 9), at(250, 2)], 400)
    assert d.history == (at(250, 2), at(400, 2))


loads = st.builds(
    PoolLoad,
    in_flight=st.floats(0, 500, allow_nan=False),
    queue_depth=st.floats(0, 500, allow_nan=False),
)


@given(
    lo=st.integers(1, 20),
    span=st.integers(0, 20),
    current=st.integers(0, 60),
    per_pod=st.integers(1, 16),
    steps=st.lists(st.tuples(st.floats(0, 200, allow_nan=False), st.none() | loads), max_size=8),
)
def test_replicas_stay_in_range_and_drop_only_to_the_windows_highest_recommendation(
    lo: int, span: int, current: int, per_pod: int, steps: list[tuple[float, PoolLoad | None]]
) -> None:
    policy = Autoscaling(min_replicas=lo, max_replicas=lo + span, scale_down_stabilization_s=300)
    now = 0.0
    decision = decide(policy, per_pod, current, PoolLoad(), (), now)
    assert lo <= decision.replicas <= lo + span
    for gap, load in steps:
        now += gap
        before = decision.replicas
        decision = decide(policy, per_pod, before, load, decision.history, now)
        assert lo <= decision.replicas <= lo + span
        if decision.replicas < before:
            assert max(r.replicas for r in decision.history) <= decision.replicas
        assert all(now - r.at <= 300 for r in decision.history)
