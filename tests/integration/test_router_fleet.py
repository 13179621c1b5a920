"""A fleet of routers shares every pod's budget: real routers and workers on 127.0.0.1.

Each worker is the authority on its own slots: past them it answers ``worker_busy`` at
once (never counted as a failure) and reports its slots and their use on every answer,
so routers that know nothing of each other converge on what each pod has free.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import MEMORY_FITS_ONE_DECODE, ServerProcess, router, workers
from tests.support.router_checks import assert_no_slots_held, transcribe
from tests.support.speech import SENTENCES, word_error_rate

pytestmark = pytest.mark.slow

CLIPS = ["fox", "meeting", "library", "office", "station", "children"]


def worker_counter(worker: ServerProcess, name: str) -> float:
    """A counter's value from the worker's /metrics (0 when it never moved)."""
    for line in httpx.get(f"{worker.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} ") or line.startswith(f"{name}{{"):
            return float(line.split()[-1])
    return 0.0


@contextlib.contextmanager
def routers(tmp: Path, n: int, backends: list[str], *extra: str) -> Iterator[list[ServerProcess]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(router(tmp, backends, *extra, name=f"r{i}")) for i in range(n)]


def test_three_routers_never_ask_a_pod_for_more_than_it_holds(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    with (
        workers(tmp_path, 2, *MEMORY_FITS_ONE_DECODE) as pods,
        routers(tmp_path, 3, [p.url for p in pods], "--per-pod", "1") as fleet,
    ):
        clips = [CLIPS[i % len(CLIPS)] for i in range(24)]
        targets = itertools.cycle(fleet)
        jobs = [(next(targets).url, name) for name in clips]
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            answers = list(ex.map(lambda j: transcribe(j[0], speech[j[1]].path), jobs))
        assert [a.status_code for a in answers] == [200] * 24, [
            a.text for a in answers if a.status_code != 200
        ]
        for (_, name), answer in zip(jobs, answers, strict=True):
            assert word_error_rate(SENTENCES[name], answer.json()["text"]) < 0.35
        # No worker ever ran out of memory: past its one slot it said busy instead.
        for pod in pods:
            assert worker_counter(pod, "asrpool_worker_oom_rejections_total") == 0
        busy = sum(worker_counter(p, "asrpool_worker_busy_rejections_total") for p in pods)
        assert busy >= 1, "the routers never contended: the test proves nothing"
        for r in fleet:
            s = assert_no_slots_held(r.url)
            assert s["failed_tasks"] == 0
            assert all(p["ejections"] == 0 for p in s["pools"][0]["pods"]), s
            # Each router knows each pod's own slot count from its answers (one, here).
            assert [p["reported_slots"] for p in s["pools"][0]["pods"]] == [1, 1], s


def test_a_router_killed_mid_burst_costs_only_its_own_requests_in_flight(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    with (
        workers(tmp_path, 2) as pods,
        routers(tmp_path, 3, [p.url for p in pods], "--per-pod", "1") as fleet,
    ):
        victim = fleet[0]
        clips = [CLIPS[i % len(CLIPS)] for i in range(30)]
        jobs = [(fleet[i % 3], name) for i, name in enumerate(clips)]

        def send(job: tuple[ServerProcess, str]) -> tuple[ServerProcess, str, object]:
            r, name = job
            try:
                return r, name, transcribe(r.url, speech[name].path, timeout=120)
            except httpx.HTTPError as exc:
                return r, name, exc

        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            futures = [ex.submit(send, job) for job in jobs]
            deadline = time.monotonic() + 120
            while sum(f.done() for f in futures) < 8:
                assert time.monotonic() < deadline, "the burst never got going"
                time.sleep(0.05)
            victim.signal(signal.SIGKILL)
            results = [f.result(timeout=300) for f in futures]
        for r, name, answer in results:
            if r is victim:
                # Its clients see a failed connection (in flight, or sent after it died),
                # never a wrong answer.
                if isinstance(answer, httpx.Response):
                    assert answer.status_code == 200
                    assert word_error_rate(SENTENCES[name], answer.json()["text"]) < 0.35
                continue
            assert isinstance(answer, httpx.Response), f"a survivor's client failed: {answer}"
            assert answer.status_code == 200, answer.text
            assert word_error_rate(SENTENCES[name], answer.json()["text"]) < 0.35
        for r in fleet[1:]:
            s = assert_no_slots_held(r.url, within_s=20)
            assert s["failed_tasks"] == 0
            # The slots the dead router held were the workers' to give back, not ours.
            assert all(p["ejections"] == 0 for p in s["pools"][0]["pods"]), s
