"""The pods of one pool and their slot accounting.

``PodState`` is everything the router knows about one pod: where it is, whether
discovery says it is ready or terminating, the slots it holds now (a count and the
seconds of audio in flight), its adaptive budget, its outlier state (``breaker.py``),
and what the pod itself last reported of its load (``pod_load.py``).

A fleet of routers shares every pod. Our worker is the authority on its own slots: it
refuses work past them at once (``worker_busy``, never a failure) and reports its slots
and their use on every answer. Each router keeps its own slots in ``in_flight`` and, from
the latest report, an estimate of those the *other* routers hold (``others``), trusted
for a short while (about half a slot's usual hold time) and then forgotten: a guess that
is too hopeful costs one quick ``worker_busy``, one too gloomy would leave a slot idle.
So ``room`` is what this router may still send: its budget, capped by the pod's own
slots, less its own requests and the others' recent share.

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
from .pod_load import PodLoad


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
    # From the pod's own reports: its slots, and those other routers hold until a time.
    reported_slots: int | None = None
    others: int = 0
    others_until: float = 0.0

    @property
    def schedulable(self) -> bool:
        """Discovery-wise able to take new work: ready, not terminating, not removed."""
        return self.ready and not self.terminating and not self.removed

    @property
    def limit(self) -> int:
        """Slots this router may use at most: its budget, capped by the pod's own count."""
        if self.reported_slots is None:
            return self.budget.capacity
        return min(self.budget.capacity, self.reported_slots)

    @property
    def free_slots(self) -> int:
        """Slots left under the limit, ignoring other routers (0 when over it)."""
        return max(0, self.limit - self.in_flight)

    def others_at(self, now: float) -> int:
        """Slots other routers are believed to hold at ``now``."""
        return self.others if now < self.others_until else 0

    def room(self, now: float) -> int:
        """Slots this router may send to now: free under the limit, less the others'."""
        return max(0, self.free_slots - self.others_at(now))

    def takes_work(self, now: float) -> bool:
        """All hard conditions for a new grant at ``now``."""
        return self.schedulable and self.room(now) > 0 and self.breaker.admits(now)

    def observe(self, load: PodLoad, now: float, trust_s: float) -> None:
        """The pod reported its load; our own share of it is ``in_flight``."""
        self.reported_slots = load.slots
        self.others = max(0, load.in_flight - self.in_flight)
        self.others_until = now + trust_s if self.others else 0.0

    def wakes_at(self) -> float | None:
        """When the others' share is forgotten (room may appear), or None."""
        return self.others_until if self.others else None

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
