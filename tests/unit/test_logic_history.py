"""The dashboard's last minutes (asrpool_router.logic.history): rates, quantiles, the ring."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_router.logic.history import (
    Buckets,
    History,
    PoolSample,
    histogram_quantile,
    series_of,
)

INF = math.inf
BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, INF)


def hist(*counts: float) -> Buckets:
    """Cumulative buckets over BOUNDS from per-bucket counts."""
    out, total = [], 0.0
    for bound, n in zip(BOUNDS, counts, strict=True):
        total += n
        out.append((bound, total))
    return tuple(out)


def sample(at: float, requests: int = 0, latency: Buckets = (), **kw: int) -> PoolSample:
    values = {"failed": 0, "ooms": 0, "retries": 0, "queue_depth": 0, "in_flight": 0, **kw}
    return PoolSample(at=at, requests=requests, latency=latency, **values)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, hist(0, 0, 0, 4, 0, 0, 0), 0.75),  # all in (0.5, 1]: the middle of it
        (0.5, hist(2, 0, 0, 0, 0, 0, 0), 0.05),  # the first bucket starts at 0
        (0.95, hist(0, 0, 0, 0, 0, 0, 3), 5.0),  # in +Inf: the highest finite bound
        (0.25, hist(1, 1, 1, 1, 0, 0, 0), 0.1),  # rank 1 of 4: the top of the first bucket
        (0.5, hist(0, 0, 0, 0, 0, 0, 0), None),  # nothing observed: no latency
        (0.5, (), None),
    ],
)
def test_quantiles_interpolate_as_prometheus_does(
    q: float, buckets: Buckets, expected: float | None
) -> None:
    got = histogram_quantile(q, buckets)
    assert got == (None if expected is None else pytest.approx(expected))


@given(st.lists(st.integers(0, 50), min_size=len(BOUNDS), max_size=len(BOUNDS)))
def test_quantiles_rise_with_q_and_stay_within_the_finite_bounds(counts: list[int]) -> None:
    buckets = hist(*counts)
    qs = [histogram_quantile(q, buckets) for q in (0.0, 0.25, 0.5, 0.95, 1.0)]
    if sum(counts) == 0:
        assert qs == [None] * 5
        return
    values = [v for v in qs if v is not None]
    assert len(values) == 5
    assert values == sorted(values)
    assert all(0.0 <= v <= 5.0 for v in values)


def test_rates_cover_the_trailing_window_and_gauges_are_the_samples_own() -> None:
    samples = [
        sample(0.0, requests=0),
        sample(1.0, requests=2, queue_depth=3, in_flight=2),
        sample(2.0, requests=6, ooms=1, queue_depth=1, in_flight=2),
        sample(3.0, requests=6, ooms=1, queue_depth=0, in_flight=0),
    ]
    s = series_of(samples, window_s=2.0)
    assert s.ago_s == (2.0, 1.0, 0.0)
    # Points at 1 s (over 0→1), 2 s (over 0→2) and 3 s (over 1→3: the window is 2 s).
    assert s.requests_per_s == (2.0, 3.0, 2.0)
    assert s.ooms_per_s == (0.0, 0.5, 0.5)
    assert s.queue_depth == (3, 1, 0)
    assert s.in_flight == (2, 2, 0)


def test_latency_comes_from_the_windows_own_requests_and_is_none_without_any() -> None:
    slow = hist(0, 0, 0, 0, 0, 4, 0)  # four requests in (2, 5] s
    slow_then_fast = hist(4, 0, 0, 0, 0, 4, 0)  # …then four in (0, 0.1] s
    samples = [sample(0.0), sample(1.0, 4, slow), sample(2.0, 8, slow_then_fast)]
    samples.append(sample(3.0, 8, slow_then_fast))
    s = series_of(samples, window_s=1.0)
    assert s.p50_s[0] == pytest.approx(3.5)
    assert s.p50_s[1] == pytest.approx(0.05)  # the slow ones left the window
    assert s.p50_s[2] is None and s.p95_s[2] is None  # nothing finished in the last second


def test_a_counter_that_restarts_counts_from_zero() -> None:
    # A count that went down (as a Prometheus counter reset) starts over.
    s = series_of([sample(0.0, requests=100), sample(1.0, requests=3)], window_s=5.0)
    assert s.requests_per_s == (3.0,)
    s = series_of(
        [sample(0.0, 9, hist(0, 0, 0, 9, 0, 0, 0)), sample(1.0, 1, hist(1, 0, 0, 0, 0, 0, 0))], 5.0
    )
    assert s.p50_s == (pytest.approx(0.05),)


def test_one_sample_draws_nothing() -> None:
    assert series_of([sample(0.0)], window_s=10.0).ago_s == ()


def test_the_ring_is_bounded_in_time_order_and_forgets_pools_no_longer_served() -> None:
    h = History(capacity=3, window_s=10.0)
    for t in range(10):
        h.record("tiny.en", sample(float(t), requests=t))
        h.record("base", sample(float(t)))
    assert [s.at for s in h.samples("tiny.en")] == [7.0, 8.0, 9.0]
    assert h.series("tiny.en").requests_per_s == (1.0, 1.0)
    with pytest.raises(ValueError, match="time order"):
        h.record("tiny.en", sample(9.0))
    h.keep_only(["tiny.en"])
    assert h.models() == ["tiny.en"]
    assert h.series("base").ago_s == ()


@pytest.mark.parametrize(("capacity", "window"), [(1, 10.0), (10, 0.0)])
def test_a_history_that_could_draw_no_rate_is_refused(capacity: int, window: float) -> None:
    with pytest.raises(ValueError):
        History(capacity=capacity, window_s=window)
