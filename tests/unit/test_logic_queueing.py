"""The bounded priority wait queue (asrpool_router.logic.queueing)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.queueing import Waiter, WaitQueue
from asrpool_router.logic.request import Priority, Request

REALTIME, INTERACTIVE, BATCH = Priority.REALTIME, Priority.INTERACTIVE, Priority.BATCH


def _waiter(ticket: int, priority: Priority, at: float = 0.0, timeout: float = 10.0) -> Waiter:
    return Waiter(ticket, Request(1.0, priority), enqueued_at=at, deadline=at + timeout)


@pytest.mark.parametrize(
    ("arrivals", "order"),
    [
        ([(1, BATCH), (2, INTERACTIVE), (3, REALTIME)], [3, 2, 1]),
        ([(1, INTERACTIVE), (2, INTERACTIVE), (3, INTERACTIVE)], [1, 2, 3]),
        ([(1, BATCH), (2, REALTIME), (3, BATCH), (4, REALTIME), (5, INTERACTIVE)], [2, 4, 5, 1, 3]),
    ],
)
def test_realtime_first_then_interactive_then_batch_fifo_within_a_class(
    arrivals: list[tuple[int, Priority]], order: list[int]
) -> None:
    queue = WaitQueue(capacity=10)
    for ticket, priority in arrivals:
        assert queue.push(_waiter(ticket, priority))
    assert [w.ticket for w in queue.in_order()] == order


def test_a_full_queue_refuses_more() -> None:
    queue = WaitQueue(capacity=2)
    assert queue.push(_waiter(1, BATCH))
    assert queue.push(_waiter(2, BATCH))
    assert queue.full
    assert not queue.push(_waiter(3, REALTIME))
    assert len(queue) == 2


def test_zero_capacity_queue_is_always_full() -> None:
    assert WaitQueue(capacity=0).full


def test_expired_entries_are_reported_and_removed() -> None:
    queue = WaitQueue(capacity=10)
    queue.push(_waiter(1, REALTIME, at=0.0, timeout=5.0))
    queue.push(_waiter(2, BATCH, at=1.0, timeout=5.0))
    queue.push(_waiter(3, INTERACTIVE, at=2.0, timeout=5.0))
    assert queue.next_deadline() == 5.0
    assert [w.ticket for w in queue.expire(4.9)] == []
    assert [w.ticket for w in queue.expire(6.0)] == [1, 2]
    assert [w.ticket for w in queue.in_order()] == [3]
    assert queue.next_deadline() == 7.0


def test_removed_tickets_do_not_expire_or_set_the_deadline() -> None:
    queue = WaitQueue(capacity=10)
    queue.push(_waiter(1, REALTIME, at=0.0))
    queue.push(_waiter(2, REALTIME, at=1.0))
    assert queue.remove(1) is not None
    assert queue.remove(1) is None
    assert queue.next_deadline() == 11.0
    assert [w.ticket for w in queue.expire(100.0)] == [2]
    assert queue.next_deadline() is None
    assert len(queue) == 0


def test_many_early_removals_keep_the_deadline_heap_small() -> None:
    queue = WaitQueue(capacity=10)
    for ticket in range(1000):
        queue.push(_waiter(ticket, INTERACTIVE))
        queue.remove(ticket)
    assert len(queue._deadlines) < 100


def test_a_ticket_cannot_be_queued_twice() -> None:
    queue = WaitQueue(capacity=10)
    assert queue.push(_waiter(1, INTERACTIVE))
    assert not queue.push(_waiter(1, REALTIME))
    assert len(queue) == 1


def test_a_ticket_that_comes_back_keeps_its_place_and_only_its_new_deadline() -> None:
    queue = WaitQueue(capacity=2)
    assert queue.push(_waiter(1, INTERACTIVE, timeout=5.0))
    assert queue.push(_waiter(2, INTERACTIVE, timeout=30.0))
    assert queue.remove(1) is not None  # granted; its attempt fails and it comes back
    assert queue.push(_waiter(3, INTERACTIVE))
    assert not queue.push(_waiter(4, INTERACTIVE))  # full for new arrivals…
    assert queue.push(_waiter(1, INTERACTIVE, at=3.0, timeout=20.0), admitted=True)  # …not it
    assert [w.ticket for w in queue.in_order()] == [1, 2, 3]  # back in its place
    assert queue.expire(6.0) == []  # its old deadline (5.0) no longer applies
    assert queue.next_deadline() == 10.0  # ticket 3's
    assert [w.ticket for w in queue.expire(23.0)] == [3, 1]
    assert [w.ticket for w in queue.in_order()] == [2]
