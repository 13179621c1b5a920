"""Live sessions on batching workers: drafts of several sessions share engine calls end to end.

One real worker with ``--max-batch 8`` (one thread) behind a real router with ``--per-pod
8`` takes six live sessions at once, started a little apart: more partials than one core
decodes one at a time, so they queue, and the queue is what batches form from (a lone
request never waits for company). Every session must get partials before each final
and accurate finals, nothing may stay in flight afterwards, and the workers must really have
decoded windows of several requests in one call. How often partials come is the benchmark's
to measure; that a batched draft reads what it reads alone is
tests/integration/test_worker_batching.py's.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import numpy as np
import pytest

from asrpool_contract.wire import IN_FLIGHT_HEADER
from tests.conftest import Clip
from tests.support.procs import ServerProcess, router, workers
from tests.support.realtime_client import COMPLETED, DELTA, open_session, read_wav16
from tests.support.speech import word_error_rate

pytestmark = pytest.mark.slow

NAMES = ["meeting", "library", "office", "station", "fox", "children"]


def metric(proc: ServerProcess, name: str) -> float:
    text = httpx.get(f"{proc.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def live(url: str, clip: Clip, delay_s: float) -> tuple[str, list[str], Any]:
    time.sleep(delay_s)
    session = open_session(url)
    session.stream(np.concatenate([read_wav16(clip.path)] * 2), speed=1.0)
    finals = session.finish(timeout=120)
    session.close()
    return clip.text, finals, session


def idle_within(pods: list[ServerProcess], seconds: float) -> list[str | None]:
    """Each worker's requests in flight, once all are 0 or ``seconds`` have passed.

    A partial that was due when its item's final came may still be decoding for a moment.
    """
    deadline = time.monotonic() + seconds
    while True:
        seen = [
            httpx.get(f"{p.url}/readyz", timeout=10).headers.get(IN_FLIGHT_HEADER) for p in pods
        ]
        if all(n == "0" for n in seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_six_live_sessions_on_a_batching_worker_share_engine_calls_and_read_right(tmp_path, speech):
    with (
        workers(tmp_path, 1, "--max-batch", "8") as pods,
        router(tmp_path, [p.url for p in pods], "--per-pod", "8") as front,
        concurrent.futures.ThreadPoolExecutor(len(NAMES)) as ex,
    ):
        runs = list(
            ex.map(lambda i: live(front.url, speech[NAMES[i]], 0.37 * i), range(len(NAMES)))
        )
        windows = sum(metric(p, "asrpool_worker_batch_windows_sum") for p in pods)
        calls = sum(metric(p, "asrpool_worker_batch_windows_count") for p in pods)
        in_flight = idle_within(pods, 15.0)
    for text, finals, session in runs:
        assert word_error_rate(f"{text} {text}", " ".join(finals)) < 0.35, finals
        completed = {r.event["item_id"] for r in session.of(COMPLETED)}
        partial_items = {r.event["item_id"] for r in session.of(DELTA)}
        assert partial_items, "a session got no partial"
        assert partial_items <= completed  # every partial belongs to an item that ended
    assert in_flight == ["0"], in_flight
    print("windows", windows, "calls", calls)
    assert windows > calls > 0, (windows, calls)  # some call decoded several requests' windows
