"""Talking to a router under test: transcribe, read /stats, check no slot is left held."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest


def transcribe(url: str, path: Path, timeout: float = 180, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        headers=headers,
        timeout=timeout,
    )


def stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/stats", timeout=10).json()


def pod_stats(url: str, pod_url: str) -> dict[str, Any]:
    """One pod's entry in /stats (the first pool's)."""
    return next(p for p in stats(url)["pools"][0]["pods"] if p["url"] == pod_url)


def assert_no_slots_held(url: str, within_s: float = 10.0) -> dict[str, Any]:
    """Every slot back and nothing queued (polled: the last releases may trail the answers)."""
    deadline = time.monotonic() + within_s
    while True:
        s = stats(url)
        held = s["active_tasks"], s["queue_depth"], [p["in_flight"] for p in s["pools"][0]["pods"]]
        if held[0] == 0 and held[1] == 0 and not any(held[2]):
            return s
        if time.monotonic() > deadline:
            pytest.fail(f"slots still held (active, queued, per pod): {held}")
        time.sleep(0.1)
