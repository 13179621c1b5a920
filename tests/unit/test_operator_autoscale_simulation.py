"""The autoscaling rule in a loop: a load trace through a simulated pool (tests/support).

The pool: perPod 2, a request takes 4 s, a new pod serves 30 s after it is asked for (or
300 s: a large model), decisions every 2 s on the routers' counters, the operator's defaults
(60 s / 6 s windows, 300 s scale-down delay, 900 s before zero) but for a target of 1.5 in
flight a pod: with the default target (every slot busy) a pool queues on every step of a
ramp by construction, and that queue is demand too. Deterministic (a fluid trace), so the
numbers below are exact properties of the rule, not of luck.
"""

from __future__ import annotations

import pytest

from asrpool_operator.logic.autoscale import UP_MIN_STEP
from asrpool_operator.logic.spec import Autoscaling
from tests.support.autoscale_sim import OperatorRule, Phase, Result, simulate

POLICY = Autoscaling(min_replicas=0, max_replicas=16, target_in_flight_per_pod=1.5)
RAMP = [Phase(60, 0.25 * i) for i in range(1, 9)]  # 0.25 → 2 requests a second, 8 min
TRACE = [*RAMP, Phase(300, 2), Phase(20, 6), Phase(300, 2), Phase(1500, 0)]
RAMP_END, SPIKE_END, IDLE = 780.0, 800.0, 1100.0
NEEDED_AT_2_PER_S = 5  # 2/s × 4 s = 8 in flight, 1.5 a pod: 5.3, within the 10 % band of 5


@pytest.fixture(scope="module")
def run() -> Result:
    return simulate(TRACE, OperatorRule(POLICY, 2), replicas=1, load_time_s=30)


def phases(trace: list[Phase]) -> list[tuple[float, float]]:
    out, t = [], 0.0
    for p in trace:
        out.append((t, t + p.seconds))
        t += p.seconds
    return out


def test_the_ramp_reaches_the_right_size_without_overshoot(run: Result) -> None:
    assert run.replicas_at(RAMP_END - 10) == NEEDED_AT_2_PER_S
    assert run.max_replicas(0, RAMP_END) == NEEDED_AT_2_PER_S
    assert max(q for t, q in run.queue if t < RAMP_END) <= 4


def test_within_a_phase_of_steady_load_the_pool_moves_one_way_only(run: Result) -> None:
    for start, end in phases(TRACE):
        moves, last = set(), run.replicas_at(start)
        for t, n in run.replicas:
            if start <= t < end and n != last:
                moves.add(n > last)
                last = n
        assert len(moves) <= 1, f"flapped between {start:g} s and {end:g} s"
    assert run.reversals() == 1  # up the ramp and the spike, then down


def test_every_request_is_served_and_the_spike_s_queue_drains(run: Result) -> None:
    assert run.unserved == 0
    assert run.queue_at(SPIKE_END + 60) == 0


def test_down_waits_its_delay_and_at_most_halves(run: Result) -> None:
    peak = run.max_replicas(RAMP_END, IDLE)
    peaked = next(t for t, n in run.replicas if t >= RAMP_END and n == peak)
    first_down = next(t for t, n in run.replicas if t > peaked and n < peak)
    assert first_down >= SPIKE_END + POLICY.scale_down_stabilization_s
    for (_, before), (_, after) in zip(run.replicas, run.replicas[1:], strict=False):
        if after < before:
            assert after >= before // 2


def test_zero_comes_only_after_the_longer_delay(run: Result) -> None:
    zero_at = next(t for t, n in run.replicas if t > IDLE and n == 0)
    assert run.replicas_at(IDLE + POLICY.scale_to_zero_delay_s - 2) == 1
    # The stable window takes 60 s to forget the last request, then the delay runs.
    assert zero_at <= IDLE + POLICY.stable_window_s + POLICY.scale_to_zero_delay_s + 10


def test_while_a_large_model_loads_the_queue_adds_no_pods_and_stays_bounded() -> None:
    """The old rule added pods for the same queue every period until maxReplicas."""
    load_s, rate = 300.0, 2.0
    run = simulate([Phase(900, rate), Phase(600, 0)], OperatorRule(POLICY, 2), replicas=1,
                   load_time_s=load_s)  # fmt: skip
    assert run.max_replicas(0, load_s) <= 1 + UP_MIN_STEP  # one ready pod, +4 at most
    assert max(q for _, q in run.queue) <= rate * load_s  # one load time's arrivals
    assert run.queue_at(900) == 0 and run.unserved == 0


def test_short_of_gpus_the_pool_stops_growing_and_recreates_nothing() -> None:
    run = simulate([Phase(900, 2), Phase(600, 0)], OperatorRule(POLICY, 2), replicas=1, gpus=3)
    assert run.max_replicas() <= 1 + UP_MIN_STEP
    grown_by = next(t for t, n in run.replicas if n == run.max_replicas())
    held = [n for t, n in run.replicas if grown_by <= t < 900]
    assert set(held) == {run.max_replicas()}, "changed size while pods waited for GPUs"
    assert run.unserved == 0
