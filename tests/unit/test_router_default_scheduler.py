"""The scheduler a router runs as built from its command line: power of two choices.

``test_logic_scheduler.py`` tests the plugins and ``default_scheduler`` one by one; this
builds the router the way ``asrpool router`` does (its parser, ``router_settings``,
``create_app``) and checks the pipeline its pools really use, by type and by what it does
under the router's own RNG, seeded.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from asrpool.cli import build_parser, router_settings
from asrpool_router.app import RouterState, create_app
from asrpool_router.dispatch import PoolRunner
from asrpool_router.logic.errors import OutcomeKind
from asrpool_router.logic.plugins import LeastOutstandingAudioScorer, PowerOfTwoPicker
from asrpool_router.logic.pool import Priority

PODS = ("pod-a", "pod-b", "pod-c")


def production_router() -> RouterState:
    """``asrpool router --backend …`` with every default (no API key: not what is tested)."""
    args = build_parser().parse_args(["router", "--no-auth", "--backend", "http://pod-a:9000"])
    state: RouterState = create_app(router_settings(args, backends=args.backend)).state.router
    return state


def pool_of(state: RouterState) -> PoolRunner:
    runner = state.pools.ensure("tiny.en")  # as discovery creates it for a backend's model
    for pod in PODS:
        runner.upsert_pod(pod, f"http://{pod}:9000")
    return runner


def test_the_routers_pools_run_the_default_pipeline_with_power_of_two_choices() -> None:
    # White-box: the runner is the only door into its pool; here the test looks inside.
    scheduler = pool_of(production_router())._pool.scheduler
    # No filter: the pool offers only pods that may take the request (test_logic_pool.py).
    assert scheduler.filters == ()
    assert [(type(s), w) for s, w in scheduler.scorers] == [(LeastOutstandingAudioScorer, 1.0)]
    assert type(scheduler.picker) is PowerOfTwoPicker


def picks(seed: int, rounds: int = 300) -> tuple[str, Counter[str]]:
    """With one long request held on a pod, where ``rounds`` short ones go (each released
    before the next), under the router's RNG seeded with ``seed``."""
    state = production_router()
    state.rng.seed(seed)
    runner = pool_of(state)

    # The runner's own acquire and release (private: forward uses them), without a transport.
    async def run() -> tuple[str, Counter[str]]:
        held = await runner._acquire(60.0, Priority.INTERACTIVE)
        counts: Counter[str] = Counter()
        for _ in range(rounds):
            slot = await runner._acquire(1.0, Priority.INTERACTIVE)
            counts[slot.pod_id] += 1
            runner._release(slot, OutcomeKind.OK)
        runner._release(held, OutcomeKind.OK)
        return held.pod_id, counts

    return asyncio.run(run())


def test_the_router_picks_the_better_of_two_random_pods() -> None:
    for seed in (1, 2, 3):
        busy, counts = picks(seed)
        # The busy pod still has a free slot (two a pod by default), so the pool offers
        # it: only the scores keep it out. Two distinct samples of three pods always include
        # an idle one, which scores better: the busy pod is never picked (a random picker
        # would take it a third of the time).
        assert counts[busy] == 0, (seed, busy, counts)
        # The two idle pods tie; the first random sample wins a tie, so both get work,
        # about half each (always taking the best would send everything to one of them).
        idle = [p for p in PODS if p != busy]
        assert set(counts) == set(idle), (seed, counts)
        assert min(counts.values()) >= 100, (seed, counts)


def test_the_same_seed_makes_the_same_choices() -> None:
    assert picks(5) == picks(5)
