"""The bounded priority wait queue of one pool.

Requests that find no free slot wait here as tickets. Order: realtime before interactive
before batch, first come first served within a class (by ticket number, which the pool
hands out in arrival order: a request that failed on one pod and comes back keeps its
place). The queue holds at most ``capacity`` new tickets (``Pool`` rejects beyond that;
a request coming back after a failed attempt was admitted already and is never refused)
and every ticket has a deadline, after which ``expire`` hands it back so the shell can
answer ``queue_timeout``.

``Pool`` is the only caller; it walks ``in_order()`` to hand freed slots out.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .request import Priority, Request


@dataclass(frozen=True)
class Waiter:
    """One queued ticket and what it asked for."""

    ticket: int
    request: Request
    enqueued_at: float
    deadline: float

    @property
    def priority(self) -> Priority:
        return self.request.priority


class WaitQueue:
    """FIFO per priority class, bounded, with deadlines."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("queue capacity must not be negative")
        self.capacity = capacity
        # Dicts keep insertion order, which is FIFO, and remove a cancelled ticket in O(1).
        self._classes: dict[Priority, dict[int, Waiter]] = {p: {} for p in Priority}
        self._where: dict[int, Priority] = {}
        # (deadline, ticket) min-heap; entries of tickets that left early are skipped lazily.
        self._deadlines: list[tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, ticket: object) -> bool:
        return ticket in self._where

    @property
    def full(self) -> bool:
        return len(self._where) >= self.capacity

    def push(self, waiter: Waiter, *, admitted: bool = False) -> bool:
        """Enqueue in ticket order; False (nothing changed) when full or already here.

        ``admitted``: the request was let in before (it comes back after a failed
        attempt), so the bound does not apply to it.
        """
        if (self.full and not admitted) or waiter.ticket in self._where:
            return False
        same_class = self._classes[waiter.priority]
        if same_class and next(reversed(same_class)) > waiter.ticket:
            # A returning ticket goes back to its place; rare, so rebuilding is fine.
            merged = sorted([*same_class.values(), waiter], key=lambda w: w.ticket)
            self._classes[waiter.priority] = {w.ticket: w for w in merged}
        else:
            same_class[waiter.ticket] = waiter
        self._where[waiter.ticket] = waiter.priority
        heapq.heappush(self._deadlines, (waiter.deadline, waiter.ticket))
        return True

    def remove(self, ticket: int) -> Waiter | None:
        """Take a ticket out (granted or cancelled); None if it is not waiting."""
        priority = self._where.pop(ticket, None)
        if priority is None:
            return None
        waiter = self._classes[priority].pop(ticket)
        # Without this, a busy queue whose tickets are mostly granted early would keep
        # their heap entries until each deadline passes.
        if len(self._deadlines) > 2 * len(self._where) + 32:
            self._deadlines = [(d, t) for d, t in self._deadlines if self._live(d, t)]
            heapq.heapify(self._deadlines)
        return waiter

    def in_order(self) -> list[Waiter]:
        """Waiting tickets in service order (a copy: callers may remove while walking)."""
        return [w for p in Priority for w in self._classes[p].values()]

    def depth_by_priority(self) -> dict[Priority, int]:
        return {p: len(self._classes[p]) for p in Priority}

    def next_deadline(self) -> float | None:
        """The earliest deadline among waiting tickets."""
        self._drop_stale_heads()
        return self._deadlines[0][0] if self._deadlines else None

    def expire(self, now: float) -> list[Waiter]:
        """Remove and return the tickets whose deadline is at or before ``now``."""
        expired: list[Waiter] = []
        while True:
            self._drop_stale_heads()
            if not self._deadlines or self._deadlines[0][0] > now:
                return expired
            _deadline, ticket = heapq.heappop(self._deadlines)
            waiter = self.remove(ticket)
            if waiter is not None:
                expired.append(waiter)

    def _live(self, deadline: float, ticket: int) -> bool:
        # A ticket that left and came back (a retry) has a new deadline: its old entry is
        # stale although the ticket is here.
        priority = self._where.get(ticket)
        return priority is not None and self._classes[priority][ticket].deadline == deadline

    def _drop_stale_heads(self) -> None:
        while self._deadlines and not self._live(*self._deadlines[0]):
            heapq.heappop(self._deadlines)
