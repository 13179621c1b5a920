"""The adaptive AIMD budget (asrpool_router.logic.budget)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.budget import AdaptiveBudget, BudgetPolicy


@pytest.mark.parametrize(
    ("ceiling", "ooms", "expected"),
    [
        (2, 1, 1),
        (4, 1, 2),
        (8, 2, 2),
        (8, 3, 1),
        (3, 1, 1),
        (1, 1, 1),
        (2, 5, 1),
    ],
)
def test_oom_halves_the_budget_down_to_the_floor(ceiling: int, ooms: int, expected: int) -> None:
    budget = AdaptiveBudget(BudgetPolicy(ceiling=ceiling))
    for _ in range(ooms):
        budget.on_oom()
    assert budget.capacity == expected


def test_successes_grow_the_budget_by_one_back_to_the_ceiling() -> None:
    budget = AdaptiveBudget(BudgetPolicy(ceiling=4, increase_after=3))
    budget.on_oom()
    assert budget.capacity == 2
    seen = []
    for _ in range(9):
        budget.on_success()
        seen.append(budget.capacity)
    assert seen == [2, 2, 3, 3, 3, 4, 4, 4, 4]


def test_an_oom_resets_the_success_streak() -> None:
    budget = AdaptiveBudget(BudgetPolicy(ceiling=4, increase_after=3))
    budget.on_oom()
    budget.on_success()
    budget.on_success()
    budget.on_oom()
    budget.on_success()
    assert budget.capacity == 1


def test_ooms_of_one_burst_cut_the_budget_once() -> None:
    budget = AdaptiveBudget(BudgetPolicy(ceiling=8))
    epoch_at_grant = budget.epoch  # four requests granted under the full budget
    assert budget.on_oom(epoch_at_grant) is True
    assert budget.on_oom(epoch_at_grant) is False
    assert budget.on_oom(epoch_at_grant) is False
    assert budget.capacity == 4
    # A request granted after the cut that still OOMs cuts again.
    assert budget.on_oom(budget.epoch) is True
    assert budget.capacity == 2


def test_budget_starts_at_the_ceiling_and_never_exceeds_it() -> None:
    budget = AdaptiveBudget(BudgetPolicy(ceiling=3, increase_after=1))
    for _ in range(10):
        budget.on_success()
    assert budget.capacity == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"floor": 0},
        {"ceiling": 1, "floor": 2},
        {"decrease_factor": 1.0},
        {"decrease_factor": 0.0},
        {"increase_after": 0},
    ],
)
def test_invalid_budget_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BudgetPolicy(**kwargs)  # type: ignore[arg-type]
