"""Router samples over time → a pool's load averaged over a window (logic.load_window)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_operator.logic.autoscale import PoolLoad
from asrpool_operator.logic.load_window import LoadHistory
from asrpool_operator.logic.router_metrics import PoolSample


def sample(busy: float | None, queued: float | None, in_flight=0.0, depth=0.0, **pods: float):
    return PoolSample(
        queue_depth=depth, in_flight=in_flight, busy_slot_seconds=busy, queued_seconds=queued,
        pods=pods,
    )  # fmt: skip


def test_the_average_is_the_counters_difference_over_the_window() -> None:
    h = LoadHistory()
    h.record(0.0, {"r": {"m": sample(100.0, 10.0)}})
    h.record(30.0, {"r": {"m": sample(160.0, 10.0)}})
    h.record(60.0, {"r": {"m": sample(280.0, 70.0, in_flight=9.0)}})
    assert h.window("m", 60.0) == PoolLoad(in_flight=3.0, queue_depth=1.0)
    assert h.window("m", 30.0) == PoolLoad(in_flight=4.0, queue_depth=2.0)
    assert h.latest("m") == PoolLoad(in_flight=9.0)


def test_a_window_shorter_than_the_scrape_period_is_the_latest_interval() -> None:
    h = LoadHistory()
    h.record(0.0, {"r": {"m": sample(0.0, 0.0)}})
    h.record(2.0, {"r": {"m": sample(8.0, 2.0)}})
    assert h.window("m", 1.0) == PoolLoad(in_flight=4.0, queue_depth=1.0)


def test_routers_add_up() -> None:
    h = LoadHistory()
    h.record(0.0, {"a": {"m": sample(0.0, 0.0)}, "b": {"m": sample(50.0, 0.0)}})
    h.record(10.0, {"a": {"m": sample(20.0, 0.0)}, "b": {"m": sample(60.0, 5.0)}})
    assert h.window("m", 60.0) == PoolLoad(in_flight=3.0, queue_depth=0.5)


def test_a_first_sample_a_restart_or_no_counters_fall_back_to_the_gauges() -> None:
    h = LoadHistory()
    h.record(0.0, {"new": {"m": sample(5.0, 0.0, in_flight=2.0)}})
    assert h.window("m", 60.0) == PoolLoad(in_flight=2.0)
    h.record(10.0, {"new": {"m": sample(1.0, 0.0, in_flight=1.0)}})  # restarted: went down
    assert h.window("m", 60.0) == PoolLoad(in_flight=1.0)
    old = LoadHistory()
    old.record(0.0, {"r": {"m": sample(None, None, in_flight=3.0, depth=4.0)}})
    old.record(10.0, {"r": {"m": sample(None, None, in_flight=1.0, depth=2.0)}})
    assert old.window("m", 60.0) == PoolLoad(in_flight=1.0, queue_depth=2.0)


def test_only_routers_that_answered_the_latest_scrape_count() -> None:
    h = LoadHistory()
    h.record(0.0, {"a": {"m": sample(0.0, 0.0)}, "b": {"m": sample(0.0, 0.0)}})
    h.record(10.0, {"a": {"m": sample(10.0, 0.0, p1=1.0)}}, missing=["b"])
    assert h.window("m", 60.0) == PoolLoad(in_flight=1.0)
    assert h.missing == ("b",)
    assert h.pods("m") == {"p1": 1.0}


def test_a_pool_a_router_stopped_reporting_is_no_longer_counted() -> None:
    h = LoadHistory()
    h.record(0.0, {"r": {"m": sample(0.0, 0.0, in_flight=5.0)}})
    h.record(10.0, {"r": {}})
    assert h.window("m", 60.0) == PoolLoad() == h.latest("m")


def test_samples_older_than_the_horizon_are_forgotten_but_one_base_is_kept() -> None:
    h = LoadHistory()
    for t in range(0, 200, 10):
        h.record(float(t), {"r": {"m": sample(float(t), 0.0)}}, horizon_s=60.0)
    assert h.window("m", 60.0) == PoolLoad(in_flight=1.0)
    assert h.window("m", 1000.0) == PoolLoad(in_flight=1.0)  # from the oldest kept
    h.record(1000.0, {}, horizon_s=60.0)
    assert h.latest("m") == PoolLoad()


@given(
    levels=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=2, max_size=40),
    window=st.integers(1, 60),
)
def test_the_average_of_piecewise_constant_levels_is_exact(
    levels: list[tuple[int, int]], window: int
) -> None:
    """Scraped every second, the counters' average equals the mean of the levels held."""
    h = LoadHistory()
    busy = queued = 0.0
    for t, (slots, depth) in enumerate(levels):
        h.record(float(t), {"r": {"m": sample(busy, queued, float(slots), float(depth))}})
        busy += slots
        queued += depth
    held = levels[:-1][-window:]  # the levels of the last `window` one-second intervals
    got = h.window("m", float(window))
    assert got.in_flight == pytest.approx(sum(s for s, _ in held) / len(held))
    assert got.queue_depth == pytest.approx(sum(d for _, d in held) / len(held))
