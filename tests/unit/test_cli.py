"""The command line: flags, their ASRPOOL_* variables, and the seed's ASR_* settings."""

from __future__ import annotations

import dataclasses
import os
import typing

import pytest

from asrpool.cli import build_parser, router_settings, worker_settings


def router_args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["router", "--no-auth", "--backend", "http://w:9000", *argv])


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "ASRPOOL_PER_POD",
        "ASR_MAX_CONCURRENT",
        "ASRPOOL_MAX_ATTEMPTS",
        "ASR_MAX_RETRIES",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = router_settings(router_args(), backends=["http://w:9000"])
    # No cap on attempts: a request is bounded by its deadline and by the pods it has tried.
    assert (settings.per_pod, settings.max_attempts, settings.auth) == (2, 0, False)


def test_the_seeds_settings_are_honoured(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASR_MAX_CONCURRENT", "3")
    monkeypatch.setenv("ASR_MAX_RETRIES", "5")
    monkeypatch.setenv("ASR_REQUEST_TIMEOUT", "120")
    settings = router_settings(router_args(), backends=["http://w:9000"])
    assert (settings.per_pod, settings.max_attempts, settings.request_timeout_s) == (3, 6, 120.0)


def test_asrpool_variables_win_over_the_seeds_and_flags_over_both(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("ASR_MAX_CONCURRENT", "3")
    monkeypatch.setenv("ASRPOOL_PER_POD", "4")
    assert router_settings(router_args(), backends=[]).per_pod == 4
    assert router_settings(router_args("--per-pod", "1"), backends=[]).per_pod == 1


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASRPOOL_PER_POD", "")
    monkeypatch.delenv("ASR_MAX_CONCURRENT", raising=False)
    assert router_settings(router_args(), backends=[]).per_pod == 2


def test_api_keys_come_from_the_variable_and_a_keys_file(monkeypatch, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("k-file-1\n# a comment\n\nk-file-2  # trailing note\n")
    monkeypatch.setenv("ASRPOOL_API_KEYS", "k-env-1, k-env-2")
    args = build_parser().parse_args(
        ["router", "--backend", "http://w:9000", "--api-keys-file", str(keys)]
    )
    settings = router_settings(args, backends=["http://w:9000"])
    assert settings.auth and settings.api_keys == ("k-env-1", "k-env-2", "k-file-1", "k-file-2")


def test_oom_recovery_after_defaults_to_3_and_reads_its_variable(monkeypatch: pytest.MonkeyPatch):
    def worker(*argv: str) -> int:
        args = build_parser().parse_args(["worker", *argv])
        return worker_settings(args, host="127.0.0.1", port=9000).oom_recovery_after

    monkeypatch.delenv("ASRPOOL_OOM_RECOVERY_AFTER", raising=False)
    assert worker() == 3
    monkeypatch.setenv("ASRPOOL_OOM_RECOVERY_AFTER", "0")
    assert worker() == 0
    assert worker("--oom-recovery-after", "5") == 5


def test_batching_is_off_by_default_and_its_flags_size_the_slots(monkeypatch: pytest.MonkeyPatch):
    def worker(*argv: str):  # type: ignore[no-untyped-def]
        args = build_parser().parse_args(["worker", *argv])
        return worker_settings(args, host="127.0.0.1", port=9000)

    for name in ("ASRPOOL_MAX_BATCH", "ASRPOOL_BATCH_WINDOW_MS", "ASRPOOL_SLOTS"):
        monkeypatch.delenv(name, raising=False)
    off = worker("--num-workers", "2")
    assert off.batch_policy is None
    assert (off.resolved_slots, off.engine_calls) == (2, 2)  # as before batching existed

    on = worker("--num-workers", "2", "--max-batch", "8", "--batch-window-ms", "4")
    assert on.batch_policy is not None
    assert (on.batch_policy.max_batch, on.batch_policy.window_s) == (8, 0.004)
    # Enough requests to fill a batch in every lane, all of them allowed into the engine.
    assert (on.resolved_slots, on.engine_calls) == (16, 16)
    assert worker("--max-batch", "8", "--slots", "5").resolved_slots == 5

    monkeypatch.setenv("ASRPOOL_MAX_BATCH", "4")
    assert worker("--num-workers", "1").resolved_slots == 4


def test_local_passes_the_batching_flags_on_to_every_worker():
    from asrpool.cli import local_pool
    from asrpool.local import worker_argv

    args = build_parser().parse_args(["local", "--max-batch", "8", "--batch-window-ms", "3"])
    flags = worker_argv(local_pool(args).worker, workers=2)
    assert flags[flags.index("--max-batch") + 1] == "8"
    assert flags[flags.index("--batch-window-ms") + 1] == "3.0"


def _a_value_unlike(value: object, kind: type, choices: tuple[str, ...] | None) -> object:
    if choices:
        return next(choice for choice in choices if choice != value)
    if kind is int:
        return 7
    if kind is float:
        return 7.5
    return "cuda" if value == "cpu" else "a-model-dir"


def test_every_worker_setting_given_to_local_reaches_every_worker(monkeypatch):
    """A worker flag is declared once (WorkerSettings); `local` passes each one on."""
    from asrpool.cli import local_pool
    from asrpool.local import worker_argv
    from asrpool_worker.settings import WorkerSettings

    for name in [n for n in os.environ if n.startswith("ASRPOOL_")]:
        monkeypatch.delenv(name)
    hints = typing.get_type_hints(WorkerSettings)
    argv, expected = ["local"], {}
    for f in dataclasses.fields(WorkerSettings):
        flag = f.metadata.get("asrpool_flag")
        if flag is None:
            continue
        kind = next(a for a in typing.get_args(hints[f.name]) or (hints[f.name],) if a)
        value = _a_value_unlike(f.default, kind, flag.choices)
        argv += [flag.option, str(value)]
        expected[f.name] = value
    assert {"num_workers", "max_batch", "max_upload_mb", "body_timeout_s"} <= expected.keys()
    given = local_pool(build_parser().parse_args(argv)).worker
    passed = worker_argv(given, workers=2)
    seen = worker_settings(build_parser().parse_args(["worker", *passed]), host="h", port=1)
    assert {name: getattr(seen, name) for name in expected} == expected
