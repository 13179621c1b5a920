"""Adaptive per-pod concurrency budget: AIMD, as TCP does for its congestion window.

A pod's budget is how many requests it may run at once. It starts at the configured
ceiling (``perPod``). When the GPU runs out of memory the budget is halved (multiplicative
decrease, never below the floor), and after a run of successes it grows by one (additive
increase) back up to the ceiling. Long audio or a neighbour's memory use can make a
budget that was fine an hour ago too large; this finds the level the GPU holds now.

``Pool.release`` calls ``on_oom`` / ``on_success``; the free-slot filter reads ``capacity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BudgetPolicy:
    """Knobs of the AIMD budget."""

    ceiling: int = 2
    floor: int = 1
    decrease_factor: float = 0.5
    # Successes in a row before one more slot is tried again.
    increase_after: int = 10

    def __post_init__(self) -> None:
        if self.floor < 1:
            raise ValueError("budget floor must be at least 1")
        if self.ceiling < self.floor:
            raise ValueError("budget ceiling must be at least the floor")
        if not 0.0 < self.decrease_factor < 1.0:
            raise ValueError("budget decrease_factor must be between 0 and 1")
        if self.increase_after < 1:
            raise ValueError("budget increase_after must be at least 1")


@dataclass
class AdaptiveBudget:
    """The live budget of one pod."""

    policy: BudgetPolicy = field(default_factory=BudgetPolicy)
    value: int = field(init=False)
    streak: int = 0
    # Counts decreases. A slot remembers the epoch it was granted in, so the several OOMs
    # of one burst (all started under the old budget) cut the budget once, not once each.
    epoch: int = 0

    def __post_init__(self) -> None:
        self.value = self.policy.ceiling

    @property
    def capacity(self) -> int:
        """How many slots the pod may hold at once."""
        return self.value

    def repolicy(self, policy: BudgetPolicy) -> None:
        """The pool's perPod changed: keep what was learned, within the new bounds.

        A budget at its old ceiling follows the ceiling (up or down); one cut by OOMs
        stays cut and climbs back by the usual additive steps.
        """
        at_ceiling = self.value >= self.policy.ceiling
        self.policy = policy
        self.value = (
            policy.ceiling if at_ceiling else min(max(self.value, policy.floor), policy.ceiling)
        )

    def on_oom(self, granted_epoch: int | None = None) -> bool:
        """Multiplicative decrease; True if the budget shrank.

        ``granted_epoch`` is the ``epoch`` when the failed request was granted; an OOM of a
        request that started before the last decrease was already accounted for.
        """
        self.streak = 0
        if granted_epoch is not None and granted_epoch != self.epoch:
            return False
        shrunk = max(self.policy.floor, int(self.value * self.policy.decrease_factor))
        if shrunk >= self.value:
            return False
        self.value = shrunk
        self.epoch += 1
        return True

    def on_success(self) -> bool:
        """Additive increase after ``increase_after`` successes; True if the budget grew."""
        if self.value >= self.policy.ceiling:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak < self.policy.increase_after:
            return False
        self.value += 1
        self.streak = 0
        return True
