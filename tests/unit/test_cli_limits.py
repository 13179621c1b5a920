"""The flags of the client limits: defaults, ASRPOOL_* variables, and what `local` passes on."""

from __future__ import annotations

import pytest

from asrpool.cli import build_parser, local_pool, router_settings, worker_settings
from asrpool.local import worker_argv

LIMIT_VARIABLES = (
    "ASRPOOL_MAX_UPLOAD_MB",
    "ASRPOOL_MAX_SPOOLED_MB",
    "ASRPOOL_HEADER_TIMEOUT",
    "ASRPOOL_BODY_TIMEOUT",
    "ASRPOOL_MAX_SESSIONS",
    "ASRPOOL_MAX_SESSIONS_PER_KEY",
    "ASRPOOL_SESSION_IDLE_TIMEOUT",
)


@pytest.fixture(autouse=True)
def _no_limit_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def router_args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["router", "--no-auth", "--backend", "http://w:9000", *argv])


def test_router_limits_default_to_the_documented_values():
    s = router_settings(router_args(), backends=[])
    assert (s.max_upload_mb, s.max_spooled_mb, s.header_timeout_s, s.body_timeout_s) == (
        25.0,
        4096.0,
        10.0,
        30.0,
    )
    assert (s.max_sessions, s.max_sessions_per_key, s.session_idle_timeout_s) == (256, 16, 120.0)


def test_router_limits_read_their_variables_and_flags_win(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASRPOOL_MAX_SPOOLED_MB", "512")
    monkeypatch.setenv("ASRPOOL_HEADER_TIMEOUT", "5")
    monkeypatch.setenv("ASRPOOL_MAX_SESSIONS_PER_KEY", "4")
    monkeypatch.setenv("ASRPOOL_SESSION_IDLE_TIMEOUT", "30")
    s = router_settings(router_args("--max-upload-mb", "8", "--header-timeout", "2"), backends=[])
    assert (s.max_spooled_mb, s.header_timeout_s, s.max_upload_mb) == (512.0, 2.0, 8.0)
    assert (s.max_sessions_per_key, s.session_idle_timeout_s) == (4, 30.0)
    assert s.max_upload_bytes == 8 * 2**20


def test_local_gives_its_upload_limit_and_timeouts_to_the_router_and_every_worker():
    args = build_parser().parse_args(
        ["local", "--max-upload-mb", "5", "--header-timeout", "3", "--body-timeout", "7"]
    )
    pool = local_pool(args)
    s = pool.router
    assert (s.max_upload_mb, s.header_timeout_s, s.body_timeout_s) == (5.0, 3.0, 7.0)
    flags = worker_argv(pool.worker, workers=2)
    for flag, value in (("--max-upload-mb", "5.0"), ("--header-timeout", "3.0")):
        assert flags[flags.index(flag) + 1] == value
    assert flags[flags.index("--body-timeout") + 1] == "7.0"


def test_the_worker_takes_the_timeouts_too(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASRPOOL_BODY_TIMEOUT", "12")
    args = build_parser().parse_args(["worker", "--header-timeout", "4"])
    w = worker_settings(args, host="127.0.0.1", port=9000)
    assert (w.header_timeout_s, w.body_timeout_s) == (4.0, 12.0)
