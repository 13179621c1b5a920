"""The Retry-After estimate for a full queue (asrpool_router.logic.retry_after)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.retry_after import HoldTime, retry_after_s


@pytest.mark.parametrize(
    ("depth", "capacity", "hold", "horizon", "expected"),
    [
        (8, 4, 2.0, 60.0, 4.0),  # 8 queued × 2 s / 4 slots
        (8, 4, 2.1, 60.0, 5.0),  # rounded up to whole seconds
        (1, 8, 0.5, 60.0, 1.0),  # at least one second
        (64, 2, 30.0, 60.0, 60.0),  # never past the queue timeout
        (5, 0, 2.0, 30.0, 30.0),  # no capacity: the queue timeout
        (0, 4, 8.0, 60.0, 2.0),  # max_queue 0 still counts one position
    ],
)
def test_retry_after_is_the_queue_drain_time_clamped(
    depth: int, capacity: int, hold: float, horizon: float, expected: float
) -> None:
    assert (
        retry_after_s(queue_depth=depth, capacity=capacity, mean_hold_s=hold, horizon_s=horizon)
        == expected
    )


def test_hold_time_follows_recent_requests() -> None:
    hold = HoldTime(mean_s=5.0, alpha=0.5)
    hold.observe(1.0)
    assert hold.mean_s == 3.0
    hold.observe(float("nan"))
    hold.observe(-1.0)
    assert hold.mean_s == 3.0
