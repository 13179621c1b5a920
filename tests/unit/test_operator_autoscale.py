"""Windowed load + pods + memory → replicas: the proportional rule, its limits and delays."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_operator.logic.autoscale import (
    HELD_GPU,
    HELD_METRICS_INCOMPLETE,
    HELD_NO_METRICS,
    Memory,
    Observed,
    PoolLoad,
    Recommendation,
    decide,
)
from asrpool_operator.logic.capacity import Capacity
from asrpool_operator.logic.spec import Autoscaling

POLICY = Autoscaling(min_replicas=1, max_replicas=10, scale_down_stabilization_s=300)
TO_ZERO = Autoscaling(
    min_replicas=0, max_replicas=5, scale_down_stabilization_s=300, scale_to_zero_delay_s=900
)
PER_POD = 2


def at(t: float, n: int) -> Recommendation:
    return Recommendation(at=t, replicas=n)


def steady(in_flight: float = 0, queued: float = 0, missing: tuple[str, ...] = ()) -> Observed:
    """The same load in both windows and now."""
    load = PoolLoad(in_flight, queued)
    return Observed(stable=load, panic=load, latest=load, missing=missing)


def ready(n: int, gpu_pending: int = 0) -> Capacity:
    return Capacity(ready=n, starting=gpu_pending, gpu_pending=gpu_pending)


CASES = [
    # (name, policy, current, pods, load, history, now, replicas, reason)
    ("idle at the minimum", POLICY, 1, ready(1), steady(0), [at(0, 1)], 10, 1, "Unchanged"),
    ("busy slots ask for pods", POLICY, 2, ready(2), steady(6), [at(0, 2)], 10, 3, "ScaledUp"),
    ("exactly at target stays", POLICY, 3, ready(3), steady(6), [at(0, 3)], 10, 3, "Unchanged"),
    ("within the tolerance band stays", POLICY, 4, ready(4), steady(8.6), [at(0, 4)], 10, 4,
     "Unchanged"),
    ("a queue past tolerance counts as work", POLICY, 3, ready(3), steady(4, queued=5),
     [at(0, 3)], 10, 5, "ScaledUp"),
    ("a tolerated queue adds nothing", Autoscaling(max_replicas=10, target_queue_depth=6), 2,
     ready(2), steady(4, queued=5), [at(0, 2)], 10, 2, "Unchanged"),
    ("a lower in-flight target scales earlier", Autoscaling(max_replicas=10,
     target_in_flight_per_pod=1.0), 2, ready(2), steady(4), [at(0, 2)], 10, 4, "ScaledUp"),
    ("never above the maximum", POLICY, 8, ready(8), steady(100), [at(0, 8)], 10, 10,
     "ScaledUp"),
    ("up at most doubles the ready pods", Autoscaling(max_replicas=100), 10, ready(10),
     steady(200), [at(0, 10)], 10, 20, "ScaledUp"),
    ("pods still loading are no capacity: no growth past twice the ready",
     Autoscaling(max_replicas=100), 10, ready(3), steady(200), [at(0, 10)], 10, 10, "Unchanged"),
    ("pods waiting for GPUs stop growth", POLICY, 4, ready(3, gpu_pending=1), steady(20),
     [at(0, 4)], 10, 4, "Unchanged"),
    ("a lull within the delay keeps the pods", POLICY, 5, ready(5), steady(0),
     [at(0, 5), at(100, 5)], 200, 5, "Unchanged"),
    ("down to the delay's highest recommendation", POLICY, 5, ready(5), steady(0),
     [at(0, 5), at(100, 3)], 350, 3, "ScaledDown"),
    ("down at most halves", POLICY, 8, ready(8), steady(0), [at(0, 8)], 400, 4, "ScaledDown"),
    ("down to the minimum after a quiet delay", POLICY, 2, ready(2), steady(0),
     [at(0, 5), at(100, 1)], 450, 1, "ScaledDown"),
    ("a fresh memory waits a whole delay before going down", POLICY, 5, ready(5), steady(0),
     [], 1000, 5, "Unchanged"),
    ("a missing router holds the size", POLICY, 4, ready(4), steady(0, missing=("r-2",)),
     [at(0, 4)], 1000, 4, "Unchanged"),
    ("a missing router does not stop growth", POLICY, 2, ready(2),
     steady(8, missing=("r-2",)), [at(0, 2)], 10, 4, "ScaledUp"),
    ("no metrics, no change", POLICY, 4, ready(4), None, [at(0, 4)], 10, 4, "Unchanged"),
    ("no metrics, still brought into range", POLICY, 14, ready(14), None, [at(0, 14)], 10, 10,
     "OutOfRange"),
    ("below the minimum comes up", Autoscaling(min_replicas=3, max_replicas=5), 0, ready(0),
     steady(0), [], 10, 3, "ScaledUp"),
    ("above the maximum comes down at once", POLICY, 14, ready(14), steady(0), [at(0, 14)], 10,
     10, "OutOfRange"),
    ("scaled to zero, a first request wakes a pod", TO_ZERO, 0, ready(0),
     Observed(PoolLoad(), PoolLoad(), PoolLoad(queue_depth=1)), [at(0, 0)], 10, 1, "ScaledUp"),
    ("scaled to zero, even a tolerated queue wakes a pod", Autoscaling(
     min_replicas=0, max_replicas=5, target_queue_depth=4), 0, ready(0), steady(queued=2),
     [at(0, 0)], 10, 1, "ScaledUp"),
    ("scaled to zero, a burst brings at most four pods", TO_ZERO, 0, ready(0),
     steady(queued=30), [at(0, 0)], 10, 4, "ScaledUp"),
    ("a small pool may grow by four ready pods' worth", Autoscaling(max_replicas=100), 1,
     ready(1), steady(200), [at(0, 1)], 10, 5, "ScaledUp"),
    ("scaled to zero and idle stays at zero", TO_ZERO, 0, ready(0), steady(0), [at(0, 0)], 10, 0,
     "Unchanged"),
    ("idle past the delay but not the longer one before zero keeps one", TO_ZERO, 1, ready(1),
     steady(0), [at(0, 1)], 400, 1, "Unchanged"),
    ("to zero after the longer delay", TO_ZERO, 1, ready(1), steady(0), [at(0, 1)], 1000, 0,
     "ScaledDown"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "current", "pods", "load", "history", "now", "replicas", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(
    policy: Autoscaling,
    current: int,
    pods: Capacity,
    load: Observed | None,
    history: list[Recommendation],
    now: float,
    replicas: int,
    reason: str,
) -> None:
    decision = decide(policy, PER_POD, current, pods, load, Memory(tuple(history)), now)
    assert (decision.replicas, decision.reason) == (replicas, reason)


HELD = [
    ("gpu", ready(3, gpu_pending=1), steady(20), HELD_GPU),
    ("missing router", ready(4), steady(0, missing=("r-2",)), HELD_METRICS_INCOMPLETE),
    ("no metrics", ready(4), None, HELD_NO_METRICS),
    ("free", ready(4), steady(8), None),
]


@pytest.mark.parametrize(("pods", "load", "held"), [h[1:] for h in HELD], ids=[h[0] for h in HELD])
def test_the_decision_says_what_held_it_back(
    pods: Capacity, load: Observed | None, held: str | None
) -> None:
    assert decide(POLICY, PER_POD, 4, pods, load, Memory((at(0, 4),)), 400).held == held


def test_the_message_says_what_load_moved_the_pool() -> None:
    d = decide(POLICY, PER_POD, 2, ready(2), steady(5, queued=1), Memory((at(0, 2),)), 10)
    assert d.message == (
        "2 → 3 pods: 5 in flight and 1 queued over 60 s (tolerated 0), target 2 a pod"
    )


def test_the_message_says_what_limited_the_growth() -> None:
    d = decide(POLICY, PER_POD, 1, ready(1), steady(30), Memory((at(0, 1),)), 10)
    assert d.replicas == 5
    assert d.message.endswith("; panic: 30 over 6 s; growth capped at 5 by 1 ready")


def test_a_burst_in_the_panic_window_scales_up_before_the_stable_average_moves() -> None:
    burst = Observed(stable=PoolLoad(2), panic=PoolLoad(10), latest=PoolLoad(10))
    d = decide(POLICY, PER_POD, 2, ready(2), burst, Memory((at(0, 2),)), 10)
    assert (d.replicas, d.panic) == (5, True)
    assert d.memory.panic_until == 10 + POLICY.stable_window_s


def test_panic_mode_never_shrinks_until_a_stable_window_without_a_burst() -> None:
    memory = Memory((at(0, 4),), panic_until=70)
    calm = steady(0)
    during = decide(POLICY, PER_POD, 4, ready(4), calm, memory, 60)
    assert (during.replicas, during.panic) == (4, True)
    after = decide(POLICY, PER_POD, 4, ready(4), calm, during.memory, 400)
    assert (after.replicas, after.panic) == (2, False)


def test_a_small_pool_below_the_threshold_does_not_panic() -> None:
    load = Observed(stable=PoolLoad(2), panic=PoolLoad(3), latest=PoolLoad(3))
    d = decide(POLICY, PER_POD, 2, ready(2), load, Memory((at(0, 2),)), 10)
    assert not d.panic and d.memory.panic_until is None


def test_no_panic_window_means_no_panic() -> None:
    policy = Autoscaling(max_replicas=10, panic_window_s=0)
    burst = Observed(stable=PoolLoad(2), panic=PoolLoad(40), latest=PoolLoad(40))
    d = decide(policy, PER_POD, 2, ready(2), burst, Memory((at(0, 2),)), 10)
    assert (d.replicas, d.panic) == (2, False)


def test_memory_forgets_recommendations_older_than_the_longest_delay() -> None:
    d = decide(POLICY, PER_POD, 2, ready(2), steady(4), Memory((at(0, 9), at(250, 2))), 1000)
    assert d.memory.recommendations == (at(250, 2), at(1000, 2))  # 900 s: the delay to zero


def test_the_recommendation_is_what_the_load_asks_within_range_not_what_was_allowed() -> None:
    d = decide(POLICY, PER_POD, 1, ready(1), steady(14), Memory((at(0, 1),)), 10)
    assert (d.replicas, d.wanted) == (5, 7)
    assert d.memory.recommendations[-1] == at(10, 7)


loads = st.builds(
    Observed,
    stable=st.builds(PoolLoad, st.floats(0, 200), st.floats(0, 200)),
    panic=st.builds(PoolLoad, st.floats(0, 200), st.floats(0, 200)),
    latest=st.builds(PoolLoad, st.floats(0, 200), st.floats(0, 200)),
    missing=st.sampled_from([(), ("r-2",)]),
)


@given(
    lo=st.integers(0, 10),
    span=st.integers(1, 20),
    current=st.integers(0, 40),
    per_pod=st.integers(1, 8),
    steps=st.lists(
        st.tuples(
            st.floats(0, 400, allow_nan=False),
            st.none() | loads,
            st.integers(0, 40),  # ready pods
            st.integers(0, 3),  # pods waiting for GPUs
        ),
        max_size=10,
    ),
)
def test_every_decision_keeps_the_limits(
    lo: int,
    span: int,
    current: int,
    per_pod: int,
    steps: list[tuple[float, Observed | None, int, int]],
) -> None:
    policy = Autoscaling(
        min_replicas=lo, max_replicas=lo + span, scale_down_stabilization_s=300,
        scale_to_zero_delay_s=600,
    )  # fmt: skip
    now, memory, replicas = 0.0, Memory(), current
    for gap, load, n_ready, gpu_pending in steps:
        now += gap
        pods = Capacity(ready=min(n_ready, replicas), gpu_pending=gpu_pending)
        d = decide(policy, per_pod, replicas, pods, load, memory, now)
        in_range = lo <= replicas <= lo + span
        assert lo <= d.replicas <= lo + span
        if d.replicas > replicas and in_range:
            grown = math.ceil(pods.ready * policy.max_scale_up_rate)
            assert d.replicas <= max(pods.ready + 4, grown), "grew past the ready pods' cap"
            assert not gpu_pending, "grew while pods wait for GPUs"
        if d.replicas < replicas and in_range:
            assert load is not None and not load.missing, "shrank without every router's load"
            assert d.replicas >= replicas // 2, "more than halved"
            delay = [r.replicas for r in d.memory.recommendations if now - r.at <= 300]
            assert d.replicas >= max(delay), "below the delay's highest recommendation"
        if d.replicas == 0 and replicas > 0:
            assert all(r.replicas == 0 for r in d.memory.recommendations if now - r.at <= 600)
        memory, replicas = d.memory, d.replicas


def test_a_queue_that_persists_while_pods_load_asks_for_the_same_pods_not_more() -> None:
    """The old rule's runaway: each period added ``queue / perPod`` pods to the current size
    for the same queue, up to maxReplicas, while the new pods loaded."""
    policy = Autoscaling(max_replicas=100)
    queue = steady(4, queued=8)  # 2 ready pods full, 8 waiting: 6 pods' worth of work
    replicas, memory = 2, Memory((at(0, 2),))
    for tick in range(1, 30):  # a minute of decisions; nothing new becomes ready
        d = decide(policy, PER_POD, replicas, Capacity(2, replicas - 2), queue, memory, tick * 2)
        replicas, memory = d.replicas, d.memory
    assert replicas == 6


def test_pods_waiting_for_gpus_take_nothing_and_stop_growth() -> None:
    pods = Capacity(ready=2, starting=2, gpu_pending=2)
    d = decide(POLICY, PER_POD, 4, pods, steady(4, queued=8), Memory((at(0, 4),)), 10)
    assert (d.replicas, d.wanted, d.held) == (4, 6, HELD_GPU)


def test_a_backlog_already_served_asks_for_no_pods() -> None:
    gone = Observed(stable=PoolLoad(4, 20), panic=PoolLoad(4, 3), latest=PoolLoad(4, 0))
    d = decide(POLICY, PER_POD, 2, ready(2), gone, Memory((at(0, 2),)), 10)
    assert (d.replicas, d.wanted) == (2, 2)
