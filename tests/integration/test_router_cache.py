"""The same audio asked the same way decodes once: in a router's memory, and in a real Redis
shared by two routers (redis-server from Debian, on 127.0.0.1, started here)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import ServerProcess, free_port, router, worker

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    log = (tmp / "redis.log").open("wb")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def decodes(pod: ServerProcess) -> float:
    for line in httpx.get(f"{pod.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("asrpool_worker_requests_total{") and 'code="ok"' in line:
            return float(line.split()[-1])
    return 0.0


def post(url: str, path: Path, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": ("clip.wav", path.read_bytes())},
        headers=headers,
        timeout=120,
    )


def test_an_identical_request_is_answered_from_memory_without_a_decode(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    with worker(tmp_path) as pod, router(tmp_path, [pod.url], "--cache-mb", "64") as r:
        first = post(r.url, speech["fox"].path)
        assert first.headers["x-asrpool-cache"] == "miss"
        before = decodes(pod)
        again = post(r.url, speech["fox"].path)
        assert again.headers["x-asrpool-cache"] == "hit"
        assert again.json() == first.json() and decodes(pod) == before
        # Asked not to store: the pool decodes, and nothing is kept or read.
        fresh = post(r.url, speech["fox"].path, **{"Cache-Control": "no-store"})
        assert "x-asrpool-cache" not in fresh.headers and decodes(pod) == before + 1
        # Other audio, or the same audio asked another way, is another answer.
        other = post(r.url, speech["meeting"].path)
        assert other.headers["x-asrpool-cache"] == "miss"
        metrics = httpx.get(f"{r.url}/metrics", timeout=5).text
        assert 'asrpool_router_cache_total{pool="tiny.en",result="hit"} 1.0' in metrics


def test_tenants_never_share_answers(tmp_path: Path, speech: dict[str, Any]) -> None:
    with (
        worker(tmp_path) as pod,
        router(tmp_path, [pod.url], "--cache-mb", "64", api_keys=("key-a", "key-b")) as r,
    ):
        a = post(r.url, speech["fox"].path, Authorization="Bearer key-a")
        b = post(r.url, speech["fox"].path, Authorization="Bearer key-b")
        assert (a.headers["x-asrpool-cache"], b.headers["x-asrpool-cache"]) == ("miss", "miss")
        assert (
            post(r.url, speech["fox"].path, Authorization="Bearer key-a").headers["x-asrpool-cache"]
            == "hit"
        )


def test_a_fleet_of_routers_shares_answers_through_redis(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    with (
        redis_server(tmp_path) as url,
        worker(tmp_path) as pod,
        router(tmp_path, [pod.url], "--cache-redis", url, name="a") as one,
        router(tmp_path, [pod.url], "--cache-redis", url, name="b") as two,
    ):
        first = post(one.url, speech["library"].path)
        assert first.headers["x-asrpool-cache"] == "miss"
        before = decodes(pod)
        other_router = post(two.url, speech["library"].path)
        assert other_router.headers["x-asrpool-cache"] == "hit"
        assert other_router.json() == first.json() and decodes(pod) == before


def test_a_redis_that_is_gone_is_a_miss_not_a_failure(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with worker(tmp_path) as pod, router(tmp_path, [pod.url], "--cache-redis", dead) as r:
        for _ in range(2):
            answer = post(r.url, speech["fox"].path)
            assert answer.status_code == 200 and answer.headers["x-asrpool-cache"] == "miss"
        assert "answer cache (redis) unreachable" in r.log()
