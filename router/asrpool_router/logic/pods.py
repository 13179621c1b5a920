"""The pods of one pool and their slot accounting.

``PodState`` is everything the router knows about one pod: where it is, whether
discovery says it is ready or terminating, the slots it holds now (a count and the
seconds of audio in flight), its adaptive budget and its circuit breaker.

``PodStore`` holds them, keyed by pod id (``upsert``, ``delete``, ``get``,
``list(predicate)``). Discovery and health checks write through ``Pool.upsert_pod`` /
``Pool.remove_pod``; the scheduler reads ``list``.

Removal while slots are in flight: the pod *lingers* (``removed=True``), takes no new
work, and is dropped when its last slot is released. Every granted slot therefore always
has a pod to be returned to, the pool's in-flight count equals the slots the shell holds,
and a pod deleted and re-added before it drained keeps its accounting.

Scheduling plugins receive these objects and must only read them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .breaker import Breaker, BreakerPolicy
from .budget import AdaptiveBudget, BudgetPolicy


@dataclass
class PodState:
    """One pod serving the pool's model."""

    id: str
    url: str
    budget: AdaptiveBudget = field(default_factory=AdaptiveBudget)
    breaker: Breaker = field(default_factory=Breaker)
    ready: bool = True
    terminating: bool = False
    # Deleted by discovery while slots were still in flight; dropped once drained.
    removed: bool = False
    in_flight: int = 0
    in_flight_audio_seconds: float = 0.0

    @property
    def schedulable(self) -> bool:
        """Discovery-wise able to take new work: ready, not terminating, not removed."""
        return self.ready and not self.terminating and not self.removed

    @property
    def free_slots(self) -> int:
        """Slots left under the current budget (0 when over it after a decrease)."""
        return max(0, self.budget.capacity - self.in_flight)

    def takes_work(self, now: float) -> bool:
        """All hard conditions for a new grant at ``now``."""
        return self.schedulable and self.free_slots > 0 and self.breaker.admits(now)

    def acquire(self, audio_seconds: float) -> None:
        """Count one more slot in flight."""
        self.in_flight += 1
        self.in_flight_audio_seconds += audio_seconds

    def release(self, audio_seconds: float) -> None:
        """Count one slot fewer in flight."""
        self.in_flight = max(0, self.in_flight - 1)
        if self.in_flight == 0:
            # Reset instead of subtracting so float rounding never leaves a ghost load.
            self.in_flight_audio_seconds = 0.0
        else:
            self.in_flight_audio_seconds = max(0.0, self.in_flight_audio_seconds - audio_seconds)


class PodStore:
    """The pods of one pool, in the order they were first seen.

    New pods get a budget and a breaker built from the store's policies.
    """

    def __init__(
        self,
        budget_policy: BudgetPolicy | None = None,
        breaker_policy: BreakerPolicy | None = None,
    ) -> None:
        self.budget_policy = budget_policy if budget_policy is not None else BudgetPolicy()
        self.breaker_policy = breaker_policy if breaker_policy is not None else BreakerPolicy()
        self._pods: dict[str, PodState] = {}

    def upsert(
        self, pod_id: str, url: str, *, ready: bool = True, terminating: bool = False
    ) -> PodState:
        """Add a pod or update what discovery says about it (a lingering pod comes back)."""
        pod = self._pods.get(pod_id)
        if pod is None:
            pod = PodState(
                id=pod_id,
                url=url,
                budget=AdaptiveBudget(self.budget_policy),
                breaker=Breaker(self.breaker_policy),
            )
            self._pods[pod_id] = pod
        pod.url = url
        pod.ready = ready
        pod.terminating = terminating
        pod.removed = False
        return pod

    def delete(self, pod_id: str) -> bool:
        """Forget a pod; True if it is gone, False if it lingers until its slots drain."""
        pod = self._pods.get(pod_id)
        if pod is None:
            return True
        if pod.in_flight > 0:
            pod.removed = True
            return False
        del self._pods[pod_id]
        return True

    def forget_if_drained(self, pod_id: str) -> None:
        """Drop a removed pod once its last slot came back."""
        pod = self._pods.get(pod_id)
        if pod is not None and pod.removed and pod.in_flight == 0:
            del self._pods[pod_id]

    def get(self, pod_id: str) -> PodState | None:
        return self._pods.get(pod_id)

    def __len__(self) -> int:
        return len(self._pods)

    def __iter__(self) -> Iterator[PodState]:
        return iter(list(self._pods.values()))

    def list(self, predicate: Callable[[PodState], bool] | None = None) -> builtins.list[PodState]:
        """The pods for which ``predicate`` holds (all when None), in first-seen order."""
        if predicate is None:
            return builtins.list(self._pods.values())
        return [pod for pod in self._pods.values() if predicate(pod)]
