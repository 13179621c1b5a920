"""The router under faults, with real worker processes on 127.0.0.1.

Every scenario ends by checking the slot accounting is back to zero: no fault
may leak a slot or leave a request queued.
"""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import (
    LEAN_WORKER,
    ONE_DECODE_FITS,
    ServerProcess,
    free_port,
    router,
    workers,
)
from tests.support.router_checks import assert_no_slots_held, stats, transcribe
from tests.support.speech import word_error_rate

pytestmark = pytest.mark.slow


def in_flight_on(worker: ServerProcess) -> float:
    for line in httpx.get(f"{worker.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("asrpool_worker_in_flight "):
            return float(line.split()[1])
    return 0.0


def wait_until_busy(worker: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while in_flight_on(worker) < 1:
        if time.monotonic() > deadline:
            pytest.fail(f"{worker.url} never started decoding")
        time.sleep(0.05)


def test_concurrent_clients_on_small_memory_budgets_all_succeed(tmp_path: Path, speech):
    with (
        workers(tmp_path, 3, *ONE_DECODE_FITS) as pods,
        router(tmp_path, [p.url for p in pods], "--per-pod", "2") as r,
    ):
        clips = ["fox", "meeting", "library", "office", "station", "children"] * 2
        with concurrent.futures.ThreadPoolExecutor(len(clips)) as ex:
            answers = list(ex.map(lambda n: transcribe(r.url, speech[n].path), clips))
        assert [a.status_code for a in answers] == [200] * len(clips), [a.text for a in answers]
        for name, answer in zip(clips, answers, strict=True):
            assert word_error_rate(speech[name].text, answer.json()["text"]) < 0.35
        s = assert_no_slots_held(r.url)
        assert s["failed_tasks"] == 0 and s["success_rate"] == "100.0%"
        assert s["oom_errors"] >= 1 and s["retries"].get("oom", 0) >= 1, s
        # The pool learned: some pod's budget came down from 2 after its OOM.
        assert min(p["budget"] for p in s["pools"][0]["pods"]) < 2, s
        # /metrics counts the same OOM retries as /stats, on this pool, each a failover or a
        # requeue on the same pod (an OOM with room left there).
        oom_retries = [
            sample
            for family in text_string_to_metric_families(httpx.get(f"{r.url}/metrics").text)
            for sample in family.samples
            if sample.name == "asrpool_router_retries_total" and sample.labels["reason"] == "oom"
        ]
        assert {x.labels["pool"] for x in oom_retries} == {"tiny.en"}, oom_retries
        assert {x.labels["how"] for x in oom_retries} <= {"failover", "requeue"}, oom_retries
        assert sum(x.value for x in oom_retries) == s["retries"]["oom"], (oom_retries, s)


def test_sigkill_of_a_busy_worker_fails_its_requests_over(tmp_path: Path, speech):
    with workers(tmp_path, 3) as pods, router(tmp_path, [p.url for p in pods]) as r:
        victim = pods[0]
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            pending = [ex.submit(transcribe, r.url, speech["long"].path) for _ in range(6)]
            wait_until_busy(victim)
            victim.signal(signal.SIGKILL)
            answers = [f.result(timeout=300) for f in pending]
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert all(len(a.json()["text"].split()) > 30 for a in answers)
        s = assert_no_slots_held(r.url)
        assert s["retries"].get("unreachable", 0) >= 1, s
        assert s["failed_tasks"] == 0


def test_a_dead_pod_is_taken_out_and_a_restarted_one_is_probed_back_in(tmp_path: Path, speech):
    with (
        workers(tmp_path, 2) as pods,
        router(tmp_path, [p.url for p in pods], "--health-interval", "0.5") as r,
    ):
        dead = pods[0]
        dead.signal(signal.SIGKILL)
        dead.proc.wait(10)
        for _ in range(4):  # every request succeeds on the other pod meanwhile
            assert transcribe(r.url, speech["fox"].path).status_code == 200

        def pod(url: str) -> dict[str, Any]:
            return next(p for p in stats(r.url)["pools"][0]["pods"] if p["url"] == url)

        deadline = time.monotonic() + 10
        while pod(dead.url)["ready"]:
            assert time.monotonic() < deadline, "the dead pod still counts as ready"
            time.sleep(0.1)

        # The same pod comes back (a restarted container on the same address).
        reborn = ServerProcess(
            ["worker", "--port", str(dead.port), *LEAN_WORKER], dead.port, tmp_path / "reborn.log"
        )
        try:
            reborn.wait_ready()
            deadline = time.monotonic() + 30
            while not ((p := pod(dead.url))["ready"] and not p["ejected"]):
                assert time.monotonic() < deadline, f"the pod never came back: {p}"
                time.sleep(0.2)
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                answers = list(ex.map(lambda _: transcribe(r.url, speech["fox"].path), range(4)))
            assert [a.status_code for a in answers] == [200] * 4
            assert requests_served(reborn) >= 1, "no request reached the pod that came back"
        finally:
            reborn.stop()
        assert_no_slots_held(r.url)


def requests_served(worker: ServerProcess) -> float:
    for line in httpx.get(f"{worker.url}/metrics", timeout=5).text.splitlines():
        if line.startswith('asrpool_worker_requests_total{code="ok"'):
            return float(line.split()[-1])
    return 0.0


def test_sigstopped_worker_times_out_and_fails_over(tmp_path: Path, speech):
    with (
        workers(tmp_path, 2) as pods,
        router(
            tmp_path,
            [p.url for p in pods],
            "--attempt-timeout-base",
            "3",
            "--health-interval",
            "600",
        ) as r,
    ):
        hung = pods[0]
        hung.signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                answers = list(ex.map(lambda _: transcribe(r.url, speech["fox"].path), range(4)))
            elapsed = time.monotonic() - started
            assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
            s = assert_no_slots_held(r.url)
            assert s["retries"].get("timeout", 0) >= 1, s
            print(f"4 requests with one hung pod took {elapsed:.1f}s")
        finally:
            hung.signal(signal.SIGCONT)


def test_all_workers_down_gives_a_clear_503_not_a_hang(tmp_path: Path, speech):
    with (
        workers(tmp_path, 2) as pods,
        router(
            tmp_path, [p.url for p in pods], "--queue-timeout", "5", "--health-interval", "0.5"
        ) as r,
    ):
        for p in pods:
            p.signal(signal.SIGKILL)
            p.proc.wait(10)
        started = time.monotonic()
        answer = transcribe(r.url, speech["fox"].path, timeout=60)
        elapsed = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert "No speech server is available" in answer.json()["error"]["message"]
        assert elapsed < 20
        deadline = time.monotonic() + 10  # the next health check marks both pods down
        while httpx.get(f"{r.url}/readyz").status_code != 503:
            assert time.monotonic() < deadline, "router still ready with every worker dead"
            time.sleep(0.2)
        zh = transcribe(r.url, speech["fox"].path, timeout=60, **{"Accept-Language": "zh-CN"})
        assert zh.status_code == 503 and "ASR服务暂时不可用" in zh.json()["error"]["message"]
        assert_no_slots_held(r.url)


def test_xinference_style_oom_text_is_classified_and_failed_over(tmp_path: Path, speech):
    port = free_port()
    double = ServerProcess(
        [str(port)], port, tmp_path / "xinference.log", module="tests.support.xinference_double"
    )
    try:
        double.wait_ready(path="/v1/models")
        with workers(tmp_path, 1) as pods, router(tmp_path, [double.url, pods[0].url]) as r:
            for _ in range(20):  # until the router has tried the double at least once
                answer = transcribe(r.url, speech["fox"].path)
                assert answer.status_code == 200, answer.text
                assert "fox" in answer.json()["text"].lower()
                if httpx.get(f"{double.url}/hits").json()["count"]:
                    break
            hits = httpx.get(f"{double.url}/hits").json()["count"]
            assert hits >= 1
            s = assert_no_slots_held(r.url)
            assert s["oom_errors"] == hits and s["failed_tasks"] == 0
        # With nothing but the full GPU behind it, the user reads our words, not the backend's.
        with router(tmp_path, [double.url], "--max-attempts", "3") as only_oom:
            answer = transcribe(only_oom.url, speech["fox"].path)
            assert answer.status_code == 503, answer.text
            err = answer.json()["error"]
            assert err["code"] == "gpu_oom" and "retried on other GPUs" in err["message"]
            assert "Model actor" not in answer.text and "GiB" not in answer.text
            assert "Model actor is out of memory" in only_oom.log()  # …the operator's log has it
            assert_no_slots_held(only_oom.url)
    finally:
        double.stop()


def test_queue_overflow_answers_429_with_retry_after(tmp_path: Path, speech):
    with (
        workers(tmp_path, 1) as pods,
        router(tmp_path, [p.url for p in pods], "--per-pod", "1", "--max-queue", "1") as r,
    ):
        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            answers = list(ex.map(lambda _: transcribe(r.url, speech["long"].path), range(5)))
        codes = sorted(a.status_code for a in answers)
        assert codes.count(200) >= 2 and codes.count(429) >= 1, codes
        for a in answers:
            if a.status_code == 429:
                assert a.json()["error"]["code"] == "queue_full"
                assert int(a.headers["Retry-After"]) >= 1
        assert_no_slots_held(r.url)

        client = openai.OpenAI(base_url=f"{r.url}/v1", api_key="unused", max_retries=0)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futures = [
                ex.submit(
                    client.audio.transcriptions.create,
                    model="whisper-1",
                    file=speech["long"].path.open("rb"),
                )
                for _ in range(4)
            ]
            errors = [f.exception() for f in futures]
        limited = [e for e in errors if isinstance(e, openai.RateLimitError)]
        assert limited and all(e.code == "queue_full" for e in limited)
        assert_no_slots_held(r.url)


def test_client_that_disconnects_frees_its_slot(tmp_path: Path, speech):
    with workers(tmp_path, 1) as pods, router(tmp_path, [p.url for p in pods]) as r:
        with pytest.raises(httpx.ReadTimeout):
            transcribe(r.url, speech["long"].path, timeout=0.5)
        assert_no_slots_held(r.url, within_s=60)
        assert transcribe(r.url, speech["fox"].path).status_code == 200


def test_status_command_prints_the_pods(tmp_path: Path, speech):
    import subprocess
    import sys

    with workers(tmp_path, 2) as pods, router(tmp_path, [p.url for p in pods]) as r:
        assert transcribe(r.url, speech["fox"].path).status_code == 200
        done = subprocess.run(
            [sys.executable, "-m", "asrpool", "status", "--url", r.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "POOL" in done.stdout and "BUDGET" in done.stdout
        for p in pods:
            assert p.url in done.stdout
        assert "1 total, 0 failed, success 100.0%" in done.stdout
        assert done.stderr == "", done.stderr  # no log line per HTTP request around the table
