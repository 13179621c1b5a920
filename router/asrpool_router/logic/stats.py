"""What the router counts of each pool's requests, and the ``/stats`` body made from it.

``PoolAccount`` is the one sink: every count of a pool is kept there, once. The pool
(``pool.Pool``) writes the attempts' outcomes as it decides them (OOM answers by pod,
retries by reason and how, give-ups, ejections); the app writes how each request ended and
its answer-cache lookups (through ``metrics.Accounting``, which holds one account a pool
for the router's life). ``/stats`` (``pool_stats``, ``router_stats``) and ``/metrics``
(``metrics.Accounting``'s collector) both read it, so the two cannot disagree.

The body's shape is the one the team we replace used: ``max_concurrent, active_tasks,
total_tasks, failed_tasks, oom_errors, success_rate`` (their dashboards read these names);
we add retries by reason, the queue, give-ups, ejections and each pod. The snapshots are
frozen: the ``/stats`` route turns them into JSON (``dataclasses.asdict``, fields in order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .pool import PoolSnapshot

K = TypeVar("K")


def _add(counts: dict[K, int], key: K) -> None:
    counts[key] = counts.get(key, 0) + 1


@dataclass
class PoolAccount:
    """One pool's counts since the router started."""

    # Client requests by how they ended: "ok", "cancelled" or the error code answered.
    requests: dict[str, int] = field(default_factory=dict)
    # OOM answers by pod, whether or not a retry then succeeded.
    ooms: dict[str, int] = field(default_factory=dict)
    # Retries by the failed attempt's outcome and how: "failover" (off a pod that failed
    # it) or "requeue" (a refusal for want of room: the pod may take it again).
    retries: dict[tuple[str, str], int] = field(default_factory=dict)
    give_ups: dict[str, int] = field(default_factory=dict)  # by GiveUpReason
    ejections: dict[str, int] = field(default_factory=dict)  # by the fault that ejected
    lookups: dict[str, int] = field(default_factory=dict)  # answer cache: "hit" | "miss"

    def finished(self, code: str) -> None:
        _add(self.requests, code)

    def oom(self, pod_id: str) -> None:
        _add(self.ooms, pod_id)

    def retried(self, reason: str, how: str) -> None:
        _add(self.retries, (reason, how))

    def gave_up(self, reason: str) -> None:
        _add(self.give_ups, reason)

    def ejected(self, reason: str) -> None:
        _add(self.ejections, reason)

    def looked_up(self, *, hit: bool) -> None:
        _add(self.lookups, "hit" if hit else "miss")

    @property
    def total_tasks(self) -> int:
        return sum(self.requests.values())

    @property
    def failed_tasks(self) -> int:
        return self.total_tasks - self.requests.get("ok", 0)

    @property
    def oom_errors(self) -> int:
        return sum(self.ooms.values())

    def retries_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (reason, _how), n in self.retries.items():
            out[reason] = out.get(reason, 0) + n
        return out


@dataclass(frozen=True)
class PodStats:
    """One pod in ``/stats``."""

    id: str
    url: str
    ready: bool
    budget: int
    max_budget: int
    in_flight: int
    in_flight_audio_seconds: float
    ejected: bool
    ejection_reason: str
    ejected_for_s: float
    ejections: int
    consecutive_failures: int
    terminating: bool
    # What the pod says of itself, for a fleet of routers: its slots (None until it
    # reports) and how many of them other routers hold now.
    reported_slots: int | None
    held_by_others: int


@dataclass(frozen=True)
class RequestTotals:
    """The seed's counters, and retries by reason: of one pool or of all."""

    max_concurrent: int
    active_tasks: int
    total_tasks: int
    failed_tasks: int
    oom_errors: int
    success_rate: str  # "97.5%"; 100 % before any request
    retries: Mapping[str, int]


@dataclass(frozen=True)
class PoolStats(RequestTotals):
    """One pool in ``/stats``."""

    model: str
    queue_depth: int
    queue_by_priority: Mapping[str, int]
    ejections: int  # of the pods there now, since they were first seen
    gave_up: Mapping[str, int]
    pods: tuple[PodStats, ...]


@dataclass(frozen=True)
class RouterStats(RequestTotals):
    """``GET /stats``: the totals over every pool, then each pool."""

    queue_depth: int
    pools: tuple[PoolStats, ...]


def success_rate(total: int, failed: int) -> str:
    rate = 100.0 if total == 0 else 100.0 * (total - failed) / total
    return f"{rate:.1f}%"


def pool_stats(snap: PoolSnapshot, account: PoolAccount) -> PoolStats:
    total, failed = account.total_tasks, account.failed_tasks
    return PoolStats(
        # The slots of the pods in rotation, busy or not (counting only pods with a free
        # slot would show 0 for a pool at full load).
        max_concurrent=snap.capacity,
        active_tasks=snap.in_flight,
        total_tasks=total,
        failed_tasks=failed,
        oom_errors=account.oom_errors,
        success_rate=success_rate(total, failed),
        retries=account.retries_by_reason(),
        model=snap.model,
        queue_depth=snap.queue_depth,
        queue_by_priority=dict(snap.queue_by_priority),
        ejections=sum(p.ejections for p in snap.pods),
        gave_up=dict(account.give_ups),
        pods=tuple(
            PodStats(
                id=p.id,
                url=p.url,
                ready=p.ready,
                budget=p.budget,
                max_budget=p.budget_ceiling,
                in_flight=p.in_flight,
                in_flight_audio_seconds=round(p.in_flight_audio_seconds, 1),
                ejected=p.ejected,
                ejection_reason=p.ejection_reason,
                ejected_for_s=round(p.ejected_for_s, 1),
                ejections=p.ejections,
                consecutive_failures=p.consecutive_failures,
                terminating=p.terminating,
                reported_slots=p.reported_slots,
                held_by_others=p.held_by_others,
            )
            for p in snap.pods
        ),
    )


def router_stats(pools: Sequence[PoolStats]) -> RouterStats:
    total = sum(p.total_tasks for p in pools)
    failed = sum(p.failed_tasks for p in pools)
    retries: dict[str, int] = {}
    for p in pools:
        for reason, n in p.retries.items():
            retries[reason] = retries.get(reason, 0) + n
    return RouterStats(
        max_concurrent=sum(p.max_concurrent for p in pools),
        active_tasks=sum(p.active_tasks for p in pools),
        total_tasks=total,
        failed_tasks=failed,
        oom_errors=sum(p.oom_errors for p in pools),
        success_rate=success_rate(total, failed),
        retries=retries,
        queue_depth=sum(p.queue_depth for p in pools),
        pools=tuple(pools),
    )
