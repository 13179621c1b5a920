"""PoolRunner (dispatch.py) over a fake pod transport: answers, failover, give-up, and every
slot back on every path, the client leaving just after its grant included.

The pool, the runner and the accounting are the real ones; only ``PodTransport`` is faked
(``tests/support/fake_pods.py``). Each test runs on its own event loop in milliseconds.
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Coroutine
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from asrpool_contract import transcript_stream as stream_events
from asrpool_contract.wire import AsrpoolError, ErrorCode
from asrpool_router.dispatch import Job, PoolRunner, Timeouts
from asrpool_router.logic.pool import PoolPolicy
from asrpool_router.metrics import Accounting
from asrpool_router.transport import BufferedUpload
from tests.support.fake_pods import OK, TEXT, UNREACHABLE, FakePods, Hold, refused

MODEL = "tiny.en"


def runner_over(fake: FakePods, *pods: str, **policy: Any) -> PoolRunner:
    policy = PoolPolicy(**{"per_pod": 1, **policy})
    accounting = Accounting(CollectorRegistry())
    runner = PoolRunner(MODEL, policy, accounting, fake, Timeouts(30, 300), rng=random.Random(0))
    for pod in pods:
        runner.upsert_pod(pod, f"http://{pod}")
    return runner


def job() -> Job:
    upload = BufferedUpload("a.wav", "audio/wav", io.BytesIO(b"RIFF"), 4, [("model", MODEL)])
    return Job("/v1/audio/transcriptions", upload, audio_seconds=1.0)


def run(test: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(test, timeout=5))


def held(runner: PoolRunner) -> tuple[int, int]:
    """Slots in flight and tickets waiting, as the pool counts them."""
    snap = runner.snapshot()
    return snap.in_flight, snap.queue_depth


async def until(condition: Any) -> None:
    """Let the other tasks run until ``condition`` holds (a few turns of the loop at most)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def test_an_answer_is_relayed_and_its_slot_given_back() -> None:
    async def test() -> None:
        fake = FakePods(OK)
        runner = runner_over(fake, "a")
        answer = await runner.forward(job())
        assert answer.content == OK.content
        assert [a.pod for a in fake.attempts] == ["http://a"]
        assert held(runner) == (0, 0)
        stats = runner.stats()
        assert (stats.oom_errors, stats.retries, stats.gave_up) == (0, {}, {})

    run(test())


def test_an_oom_fails_over_to_the_other_pod_and_is_counted_once() -> None:
    async def test() -> None:
        fake = FakePods(refused("gpu_oom"), OK)  # one slot a pod: an OOM is the pod's fault
        runner = runner_over(fake, "a", "b")
        await runner.forward(job())
        first, second = (a.pod for a in fake.attempts)
        assert first != second
        assert held(runner) == (0, 0)
        stats = runner.stats()
        assert (stats.oom_errors, stats.retries) == (1, {"oom": 1})
        pod = first.removeprefix("http://")
        assert runner.accounting.ooms_by_pod() == {MODEL: {pod: 1}}
        # /metrics reads the same account.
        page = generate_latest(runner.accounting.registry).decode()
        assert f'asrpool_router_oom_total{{pod="{pod}",pool="{MODEL}"}} 1.0' in page
        failover = f'{{how="failover",pool="{MODEL}",reason="oom"}} 1.0'
        assert f"asrpool_router_retries_total{failover}" in page

    run(test())


def test_a_request_every_pod_failed_gives_up_and_says_so() -> None:
    async def test() -> None:
        runner = runner_over(FakePods(UNREACHABLE, UNREACHABLE), "a", "b")
        with pytest.raises(AsrpoolError) as err:
            await runner.forward(job())
        assert err.value.code is ErrorCode.SERVICE_UNAVAILABLE
        assert "failed it (2 attempt(s) on 2 server(s))" in str(err.value.message)
        assert held(runner) == (0, 0)
        assert runner.stats().gave_up == {"every_pod_failed": 1}

    run(test())


def test_a_client_leaving_mid_attempt_gives_the_slot_back() -> None:
    async def test() -> None:
        fake = FakePods(Hold())  # the pod never answers
        runner = runner_over(fake, "a")
        request = asyncio.create_task(runner.forward(job()))
        await until(lambda: fake.attempts)
        assert held(runner) == (1, 0)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert held(runner) == (0, 0)

    run(test())


def test_a_grant_that_races_the_clients_departure_is_given_back() -> None:
    """The slot is granted (the waiter's future has its result) and the client leaves
    before the waiting task runs again: the runner must give that slot back."""

    async def test() -> None:
        fake = FakePods(Hold())
        runner = runner_over(fake, "a")
        first = asyncio.create_task(runner.forward(job()))  # holds a's only slot
        second = asyncio.create_task(runner.forward(job()))
        await until(lambda: held(runner) == (1, 1))
        runner.upsert_pod("b", "http://b")  # room: the waiting ticket is granted b's slot…
        assert held(runner) == (2, 0)
        second.cancel()  # …and its client leaves before it could take it
        with pytest.raises(asyncio.CancelledError):
            await second
        assert held(runner) == (1, 0)
        assert [a.pod for a in fake.attempts] == ["http://a"]  # b was never sent anything
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert held(runner) == (0, 0)

    run(test())


def test_a_request_waiting_past_the_queue_timeout_is_answered_so() -> None:
    async def test() -> None:
        hold = Hold()
        runner = runner_over(FakePods(hold), "a", queue_timeout_s=0.01)
        first = asyncio.create_task(runner.forward(job()))
        await until(lambda: held(runner) == (1, 0))
        with pytest.raises(AsrpoolError) as err:
            await runner.forward(job())
        assert err.value.code is ErrorCode.QUEUE_TIMEOUT
        assert held(runner) == (1, 0)
        hold.release()
        await first
        assert held(runner) == (0, 0)

    run(test())


def test_a_stream_cut_short_goes_on_at_another_pod_from_its_last_delta() -> None:
    async def test() -> None:
        fake = FakePods(
            [stream_events.delta("hello", end_s=1.25)],  # then the pod goes away
            [
                stream_events.delta(" there", end_s=2.0),
                stream_events.done(TEXT, audio_seconds=2.0, output_tokens=3, logprobs=None),
            ],
        )
        runner = runner_over(fake, "a", "b")
        events = [e async for e in runner.forward_stream(job())]
        assert [e.get("delta") for e in events[:2]] == ["hello", " there"]
        assert all(stream_events.END_MARK not in e for e in events)
        assert (events[2]["type"], events[2]["text"]) == (stream_events.DONE, "hello there")
        first, second = fake.attempts
        assert first.pod != second.pod
        assert (stream_events.OFFSET_FIELD, "1.250") in second.fields
        assert held(runner) == (0, 0)

    run(test())


def test_a_stream_the_client_leaves_gives_its_slot_back() -> None:
    async def test() -> None:
        fake = FakePods([stream_events.delta("hello", end_s=1.0)] * 3)
        runner = runner_over(fake, "a")
        events = runner.forward_stream(job())
        assert (await anext(events))["delta"] == "hello"
        assert held(runner) == (1, 0)
        await events.aclose()  # the client went away mid-stream
        assert held(runner) == (0, 0)

    run(test())
