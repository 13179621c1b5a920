"""The scheduling pipeline and its plugins (asrpool_router.logic.scheduler, plugins/)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from asrpool_router.logic.plugins import (
    LeastOutstandingAudioScorer,
    MaxScorePicker,
    PowerOfTwoPicker,
)
from asrpool_router.logic.pods import PodState, PodStore
from asrpool_router.logic.request import Request
from asrpool_router.logic.scheduler import Scheduler, default_scheduler
from asrpool_router.logic.scheduling import ScoredPod


def _pods(*specs: tuple[str, int, float]) -> list[PodState]:
    """Pods from (id, requests in flight, audio seconds in flight)."""
    store = PodStore()
    for pod_id, requests, audio in specs:
        pod = store.upsert(pod_id, f"http://{pod_id}")
        pod.in_flight = requests
        pod.in_flight_audio_seconds = audio
    return store.list()


def _ids(pods: Sequence[PodState]) -> list[str]:
    return [p.id for p in pods]


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([("a", 0, 0.0), ("b", 0, 0.0)], [1.0, 1.0]),
        ([("a", 1, 9.0), ("b", 1, 19.0)], [0.5, 0.0]),
        # One long request outweighs two short ones: audio counts, not requests.
        ([("a", 1, 599.0), ("b", 2, 8.0)], [0.0, 0.9833]),
    ],
)
def test_least_outstanding_audio_scorer_counts_audio_seconds(
    specs: list[tuple[str, int, float]], expected: list[float]
) -> None:
    scores = LeastOutstandingAudioScorer().score(_pods(*specs), Request(1.0), 0.0)
    assert scores == pytest.approx(expected, abs=1e-3)


def test_power_of_two_picker_never_picks_the_worse_of_two() -> None:
    pods = _pods(("a", 0, 0), ("b", 0, 0))
    scored = [ScoredPod(pods[0], 0.2), ScoredPod(pods[1], 0.8)]
    picker = PowerOfTwoPicker(random.Random(1))
    assert {picker.pick(scored).id for _ in range(50)} == {"b"}


def test_power_of_two_picker_spreads_over_equal_pods() -> None:
    pods = _pods(*[(name, 0, 0.0) for name in "abcd"])
    scored = [ScoredPod(p, 1.0) for p in pods]
    picker = PowerOfTwoPicker(random.Random(3))
    counts = Counter(picker.pick(scored).id for _ in range(400))
    assert set(counts) == set("abcd")
    assert min(counts.values()) > 50


def test_power_of_two_picker_never_picks_the_worst_of_three() -> None:
    pods = _pods(("a", 0, 0), ("b", 0, 0), ("c", 0, 0))
    scored = [ScoredPod(pods[0], 0.1), ScoredPod(pods[1], 0.5), ScoredPod(pods[2], 0.9)]
    picker = PowerOfTwoPicker(random.Random(5))
    assert "a" not in {picker.pick(scored).id for _ in range(200)}


def test_max_score_picker_takes_the_best_and_the_first_on_ties() -> None:
    pods = _pods(("a", 0, 0), ("b", 0, 0), ("c", 0, 0))
    assert MaxScorePicker().pick([ScoredPod(p, 0.5) for p in pods]).id == "a"
    scored = [ScoredPod(pods[0], 0.1), ScoredPod(pods[1], 0.7), ScoredPod(pods[2], 0.7)]
    assert MaxScorePicker().pick(scored).id == "b"


def test_the_pipeline_picks_the_least_loaded_pod_it_is_offered() -> None:
    # The pool offers only pods that may take the request (test_logic_pool.py checks it).
    pods = _pods(("a", 2, 4.0), ("b", 1, 300.0), ("c", 1, 2.0))
    scheduler = Scheduler(
        filters=[], scorers=[(LeastOutstandingAudioScorer(), 1.0)], picker=MaxScorePicker()
    )
    assert scheduler.pick(pods, Request(5.0), 0.0) is pods[2]
    assert scheduler.pick(pods[:2], Request(5.0), 0.0) is pods[0]


def test_default_scheduler_is_the_pipeline_with_power_of_two_choices() -> None:
    scheduler = default_scheduler(random.Random(0))
    # No filter: the pool offers only pods that may take the request (test_logic_pool.py).
    assert scheduler.filters == ()
    assert [(type(s), w) for s, w in scheduler.scorers] == [(LeastOutstandingAudioScorer, 1.0)]
    assert type(scheduler.picker) is PowerOfTwoPicker


def test_default_scheduler_returns_none_without_candidates() -> None:
    assert default_scheduler(random.Random(0)).pick([], Request(1.0), 0.0) is None


class _Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, pods: Sequence[PodState], request: Request, now: float) -> list[float]:
        return [self.value for _ in pods]


class _ById:
    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score(self, pods: Sequence[PodState], request: Request, now: float) -> list[float]:
        return [self.scores[p.id] for p in pods]


def test_scores_are_the_weighted_mean_of_the_scorers() -> None:
    pods = _pods(("a", 0, 0), ("b", 0, 0))
    scheduler = Scheduler(
        filters=[],
        scorers=[(_ById({"a": 1.0, "b": 0.0}), 3.0), (_ById({"a": 0.0, "b": 1.0}), 1.0)],
        picker=MaxScorePicker(),
    )
    scored = scheduler.score(pods, Request(1.0), 0.0)
    assert [s.score for s in scored] == pytest.approx([0.75, 0.25])


def test_a_scorer_out_of_range_is_clamped() -> None:
    pods = _pods(("a", 0, 0))
    scheduler = Scheduler(filters=[], scorers=[(_Constant(7.0), 1.0)], picker=MaxScorePicker())
    assert scheduler.score(pods, Request(1.0), 0.0)[0].score == 1.0


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler(filters=[], scorers=[(_Constant(1.0), -1.0)], picker=MaxScorePicker())
