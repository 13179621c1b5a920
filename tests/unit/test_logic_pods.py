"""Pod state and the pod store (asrpool_router.logic.pods)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.budget import AdaptiveBudget, BudgetPolicy
from asrpool_router.logic.pod_load import PodLoad
from asrpool_router.logic.pods import PodState, PodStore


def test_upsert_adds_then_updates_in_place() -> None:
    store = PodStore()
    first = store.upsert("a", "http://a:8000")
    second = store.upsert("a", "http://a2:8000", ready=False)
    assert first is second
    assert second.url == "http://a2:8000"
    assert not second.schedulable
    assert len(store) == 1


def test_deleting_an_idle_pod_forgets_it() -> None:
    store = PodStore()
    store.upsert("a", "http://a")
    assert store.delete("a") is True
    assert store.get("a") is None
    assert store.delete("unknown") is True


def test_deleting_a_busy_pod_lets_it_linger_until_drained() -> None:
    store = PodStore()
    pod = store.upsert("a", "http://a")
    pod.acquire(3.0)
    assert store.delete("a") is False
    assert pod.removed and not pod.schedulable
    store.forget_if_drained("a")
    assert store.get("a") is pod
    pod.release(3.0)
    store.forget_if_drained("a")
    assert store.get("a") is None


def test_a_lingering_pod_re_added_keeps_its_slots() -> None:
    store = PodStore()
    pod = store.upsert("a", "http://a")
    pod.acquire(2.0)
    store.delete("a")
    again = store.upsert("a", "http://a")
    assert again is pod
    assert again.in_flight == 1
    assert again.schedulable


@pytest.mark.parametrize(
    ("ready", "terminating", "schedulable"),
    [(True, False, True), (False, False, False), (True, True, False), (False, True, False)],
)
def test_only_ready_non_terminating_pods_are_schedulable(
    ready: bool, terminating: bool, schedulable: bool
) -> None:
    store = PodStore()
    assert store.upsert("a", "u", ready=ready, terminating=terminating).schedulable is schedulable


def test_list_filters_with_a_predicate_in_first_seen_order() -> None:
    store = PodStore()
    for name in "cab":
        store.upsert(name, f"http://{name}", ready=name != "a")
    assert [p.id for p in store.list()] == ["c", "a", "b"]
    assert [p.id for p in store.list(lambda p: p.ready)] == ["c", "b"]


def test_audio_in_flight_returns_to_exactly_zero() -> None:
    pod = PodState("a", "u")
    for seconds in (0.1, 0.2, 0.3):
        pod.acquire(seconds)
    for seconds in (0.3, 0.1, 0.2):
        pod.release(seconds)
    assert pod.in_flight == 0
    assert pod.in_flight_audio_seconds == 0.0


def test_free_slots_follow_the_current_budget() -> None:
    store = PodStore(budget_policy=BudgetPolicy(ceiling=4))
    pod = store.upsert("a", "u")
    pod.acquire(1.0)
    pod.acquire(1.0)
    pod.acquire(1.0)
    assert pod.free_slots == 1
    pod.budget.on_oom()  # 4 → 2, below what is in flight
    assert pod.free_slots == 0
    assert not pod.takes_work(0.0)


@pytest.mark.parametrize(
    ("slots", "in_flight", "parsed"),
    [
        ("2", "1", PodLoad(2, 1)),
        ("1", "0", PodLoad(1, 0)),
        (None, "1", None),  # a third-party backend says nothing
        ("2", None, None),
        ("0", "0", None),  # a pod without slots is no report
        ("2", "-1", None),
        ("two", "1", None),
    ],
)
def test_a_load_report_is_read_from_the_worker_headers(
    slots: str | None, in_flight: str | None, parsed: PodLoad | None
) -> None:
    assert PodLoad.parse(slots, in_flight) == parsed


def test_room_counts_the_pods_own_slots_and_what_other_routers_hold() -> None:
    pod = PodState("a", "http://a", budget=AdaptiveBudget(BudgetPolicy(ceiling=4)))
    pod.acquire(1.0)
    assert pod.room(0.0) == 3
    pod.observe(PodLoad(slots=3, in_flight=2), now=0.0, trust_s=1.0)  # one of them ours
    assert (pod.limit, pod.others_at(0.5), pod.room(0.5)) == (3, 1, 1)
    assert pod.room(1.0) == 2  # the others' share is forgotten after the trust time
    assert pod.wakes_at() == 1.0
