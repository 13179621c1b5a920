"""The metrics contract between router and operator, read from a real router under load.

A real ``asrpool router`` process fronts two fault backends that answer each transcription
after ``DELAY_S`` (no model needed), one slot a pod; more clients than slots make a queue.
Its ``/metrics`` page, scraped mid-load and after, is read by the operator's own parser
(``asrpool_operator.logic.router_metrics``), which knows the families only by the names in
``asrpool_contract.metric_names``: a rename, a lost label or a changed type on the router's
side fails here, not in a cluster. The unit test beside the parser reads a router app whose
pool is fed by hand; this one is fed by HTTP clients.
"""

from __future__ import annotations

import concurrent.futures
import io
import time
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from asrpool_operator.logic.autoscale import PoolLoad
from asrpool_operator.logic.router_metrics import PoolSample, parse
from tests.support.fault_backend import DEFAULT_MODEL, Mode, fault_backend
from tests.support.procs import router

DELAY_S = 4.0  # each answer's delay at the backends: how long a request holds its slot
CLIENTS = 3  # over two pods of one slot each: two in flight, one waiting


def wav(seconds: float = 1.0) -> bytes:
    t = np.arange(int(16_000 * seconds)) / 16_000
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def scrape(url: str) -> PoolSample | None:
    response = httpx.get(f"{url}/metrics", timeout=10)  # no API key: the operator has none
    assert response.status_code == 200
    return parse(response.text).get(DEFAULT_MODEL)


def wait_for(
    url: str, load: PoolLoad, pods: dict[str, float], still: Callable[[], bool] = lambda: True
) -> PoolSample:
    """The pool's sample once its gauges read ``load`` on ``pods``; fails once ``still()``
    says that can no longer come, or after a bound that only catches a hang."""
    deadline = time.monotonic() + 30
    while True:
        sample = scrape(url)
        if sample is not None and (sample.load, dict(sample.pods)) == (load, pods):
            return sample
        if not still() or time.monotonic() > deadline:
            pytest.fail(f"the router's page never showed {load} on {pods}; last: {sample}")
        time.sleep(0.05)


def test_the_operator_reads_a_loaded_routers_real_metrics_page(tmp_path: Path) -> None:
    body = wav()
    with (
        fault_backend(tmp_path, Mode.OK, delay=DELAY_S, name="pod-a") as a,
        fault_backend(tmp_path, Mode.OK, delay=DELAY_S, name="pod-b") as b,
        router(tmp_path, [a.url, b.url], "--per-pod", "1") as r,
    ):
        # A static backend's pod is named by its URL; gauges at zero are still series.
        idle = wait_for(r.url, PoolLoad(0, 0), {a.url: 0.0, b.url: 0.0})
        assert (idle.busy_slot_seconds, idle.queued_seconds) == (0.0, 0.0)

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as ex:
            answers = [
                ex.submit(
                    httpx.post,
                    f"{r.url}/v1/audio/transcriptions",
                    files={"file": ("tone.wav", body)},
                    timeout=60,
                )
                for _ in range(CLIENTS)
            ]
            # Mid-load, before any answer is back: both slots taken, one each, one waiting.
            loaded = wait_for(
                r.url,
                PoolLoad(in_flight=2, queue_depth=CLIENTS - 2),
                {a.url: 1.0, b.url: 1.0},
                still=lambda: not any(f.done() for f in answers),
            )
            assert [f.result().status_code for f in answers] == [200] * CLIENTS

        # After: the gauges back at zero (the last release may trail its answer), and the
        # counters kept what happened.
        done = wait_for(r.url, PoolLoad(0, 0), {a.url: 0.0, b.url: 0.0})
        elapsed = time.monotonic() - started
        assert loaded.busy_slot_seconds is not None and loaded.queued_seconds is not None
        assert done.busy_slot_seconds is not None and done.queued_seconds is not None
        assert done.busy_slot_seconds >= loaded.busy_slot_seconds  # counters only grow
        assert done.queued_seconds >= loaded.queued_seconds
        # ∫ slots dt: every request held its slot at least the backend's delay, and no more
        # than the two slots were ever held at once.
        assert CLIENTS * DELAY_S <= done.busy_slot_seconds <= 2 * elapsed
        # ∫ queue dt: the third request waited for a slot, and no more than one ever waited.
        assert 0.0 < done.queued_seconds <= (CLIENTS - 2) * elapsed
