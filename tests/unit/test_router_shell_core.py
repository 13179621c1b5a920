"""Pure helpers the router's shell relies on: audio length, attempt timeout, stats, auth."""

from __future__ import annotations

import io
import wave
from dataclasses import asdict

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from asrpool_contract.wire import OPENAI_TRANSCRIPTION_MODELS, AsrpoolError, ErrorCode
from asrpool_router.app import create_app
from asrpool_router.auth import ApiKeyAuth, bearer_token, key_matches
from asrpool_router.dispatch import PoolRunner, Timeouts
from asrpool_router.logic.audio_estimate import (
    COMPRESSED_BYTES_PER_SECOND,
    attempt_timeout_s,
    estimate_audio_seconds,
)
from asrpool_router.logic.pool import Granted, Pool, PoolPolicy
from asrpool_router.logic.request import Priority
from asrpool_router.logic.stats import PoolAccount, pool_stats, router_stats, success_rate
from asrpool_router.metrics import Accounting
from asrpool_router.pools import PoolRegistry
from asrpool_router.settings import RouterSettings
from asrpool_router.transport import PodTransport


def wav_bytes(seconds: float, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return buf.getvalue()


@pytest.mark.parametrize("seconds", [0.5, 3.0, 61.0])
def test_wav_length_comes_from_its_header(seconds: float):
    data = wav_bytes(seconds)
    assert estimate_audio_seconds(data[:4096], len(data)) == pytest.approx(seconds, abs=0.01)


def test_truncated_wav_counts_only_the_bytes_sent():
    data = wav_bytes(10)[: 44 + 32_000]
    assert estimate_audio_seconds(data[:4096], len(data)) == pytest.approx(1.0, abs=0.01)


def test_compressed_audio_is_estimated_from_size_erring_long():
    assert (
        estimate_audio_seconds(b"ID3" + b"\0" * 100, 40_000) == 40_000 / COMPRESSED_BYTES_PER_SECOND
    )
    assert estimate_audio_seconds(b"", 0) == 0.0


def test_attempt_timeout_grows_with_audio_and_is_capped():
    assert attempt_timeout_s(0, base_s=30, cap_s=300) == 30
    assert attempt_timeout_s(60, base_s=30, cap_s=300) == 90
    assert attempt_timeout_s(3600, base_s=30, cap_s=300) == 300


def test_stats_keep_the_seed_shape_and_count_ooms_and_retries():
    a, b = PoolAccount(), PoolAccount()
    a.finished("ok")
    a.oom("pod-1")
    a.retried("oom", "requeue")
    a.finished("ok")
    b.finished("gpu_oom")
    pools = []
    for model, account in (("x", a), ("y", b)):
        pool = Pool(model, PoolPolicy(per_pod=2), account=account)
        pool.upsert_pod("pod-1", "http://pod-1", now=0.0)
        pools.append(pool)
    pools[1].submit(audio_seconds=1.0, priority=Priority.INTERACTIVE, now=0.0)
    body = asdict(router_stats([pool_stats(p.snapshot(0.0), p.account) for p in pools]))
    seed = ["max_concurrent", "active_tasks", "total_tasks", "failed_tasks", "oom_errors"]
    assert list(body) == [*seed, "success_rate", "retries", "queue_depth", "pools"]
    assert {k: body[k] for k in [*seed, "success_rate", "retries"]} == {
        "max_concurrent": 4,
        "active_tasks": 1,
        "total_tasks": 3,
        "failed_tasks": 1,
        "oom_errors": 1,
        "success_rate": "66.7%",
        "retries": {"oom": 1},
    }
    pool_keys = ["model", "queue_depth", "queue_by_priority", "ejections", "gave_up", "pods"]
    assert list(body["pools"][0]) == [*seed, "success_rate", "retries", *pool_keys]
    assert list(body["pools"][0]["pods"][0]) == [
        "id", "url", "ready", "budget", "max_budget", "in_flight", "in_flight_audio_seconds",
        "ejected", "ejection_reason", "ejected_for_s", "ejections", "consecutive_failures",
        "terminating", "reported_slots", "held_by_others",
    ]  # fmt: skip
    assert success_rate(0, 0) == "100.0%"


def test_bearer_tokens_are_read_strictly():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_keys_match_only_exactly():
    keys = ("k-one", "k-two")
    assert key_matches("k-two", keys)
    assert not key_matches("k-tw", keys) and not key_matches("k-two ", keys)
    assert not key_matches("anything", ())


def test_auth_on_without_keys_is_a_configuration_error():
    with pytest.raises(ValueError, match="no API keys are configured"):
        ApiKeyAuth(True, ())
    ApiKeyAuth(False, ()).check(None)  # open when off
    with pytest.raises(AsrpoolError) as refused:
        ApiKeyAuth(True, ("k",)).check("x")
    assert refused.value.code is ErrorCode.UNAUTHORIZED


# --- model names: the pool registry ----------------------------------------------------


def _runner(model: str, policy: PoolPolicy) -> PoolRunner:
    return PoolRunner(
        model, policy, Accounting(CollectorRegistry()), PodTransport(), Timeouts(30, 300)
    )


def _registry(**aliases: str) -> PoolRegistry:
    registry = PoolRegistry(lambda model: PoolPolicy(), _runner, fixed_aliases=aliases)
    registry.ensure("tiny.en")
    registry.ensure("large-v3")
    return registry


def test_openai_names_go_to_the_default_pool_and_aliases_to_theirs():
    pools = _registry(meetings="large-v3", **{"gpt-4o-transcribe": "large-v3"})
    for name in ("", *OPENAI_TRANSCRIPTION_MODELS):
        expected = "large-v3" if name == "gpt-4o-transcribe" else "tiny.en"
        assert pools.resolve(name).model == expected, name
    assert pools.resolve("meetings").model == "large-v3"
    pools.aliases = {"meetings": "tiny.en", "notes": "tiny.en"}  # from Kubernetes
    assert pools.resolve("meetings").model == "large-v3"  # the command line wins
    assert pools.resolve("notes").model == "tiny.en"
    with pytest.raises(AsrpoolError) as err:
        pools.resolve("medium")
    assert err.value.param == "model" and "large-v3, tiny.en" in str(err.value.message)


def test_names_lists_pools_aliases_and_openais_names_once_each():
    names = _registry(meetings="large-v3").names()
    assert names[:3] == [
        ("tiny.en", "tiny.en", "pool"),
        ("large-v3", "large-v3", "pool"),
        ("meetings", "large-v3", "alias"),
    ]
    assert next(n for n, _, k in names if k == "openai") == "whisper-1"
    assert len({n for n, _, _ in names}) == len(names)


def test_max_concurrent_counts_the_busy_slots_of_pods_in_rotation() -> None:
    runner = _runner("tiny.en", PoolPolicy(per_pod=2))
    for pod in ("a", "b"):
        runner.upsert_pod(pod, f"http://{pod}")
    # White-box: four slots held without an event loop to run requests on.
    now = runner.clock()
    grants = [
        runner._pool.submit(audio_seconds=1.0, priority=Priority.INTERACTIVE, now=now)
        for _ in range(4)
    ]
    assert all(isinstance(g, Granted) for g in grants)
    stats = runner.stats()
    assert (stats.active_tasks, stats.max_concurrent) == (4, 4)  # full, not 0
    runner.upsert_pod("b", "http://b", ready=False)
    assert runner.stats().max_concurrent == 2  # a pod out of rotation brings none


def test_stats_live_and_metrics_show_the_queue_by_class_and_live_sessions() -> None:
    app = create_app(RouterSettings(auth=False, per_pod=1))
    state = app.state.router
    runner = state.pools.ensure("tiny.en")
    runner.upsert_pod("tiny-worker-a", "http://10.0.0.7:9000")
    # White-box: slots held and tickets waiting with no event loop (and no pod) to serve them.
    now = runner.clock()
    for priority in (Priority.INTERACTIVE, Priority.INTERACTIVE, Priority.BATCH):
        runner._pool.submit(audio_seconds=1.0, priority=priority, now=now)  # 1 runs, 2 wait
    assert state.sessions.open(None) is None
    with TestClient(app) as client:
        page = client.get("/metrics").text
        live = client.get("/stats/live").json()
        stats = client.get("/stats").json()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(page)
        for s in f.samples
    }
    assert samples[("asrpool_router_sessions_open", ())] == 1
    by_class = {
        dict(labels)["priority"]: v
        for (name, labels), v in samples.items()
        if name == "asrpool_router_queue_depth_by_priority"
    }
    assert by_class == {"realtime": 0, "interactive": 1, "batch": 1}
    # /stats/live is /stats (one function builds both), plus what the dashboard draws.
    assert live["stats"] == stats
    assert stats["pools"][0]["queue_by_priority"] == {"realtime": 0, "interactive": 1, "batch": 1}
    assert live["sessions"]["open"] == 1
    assert set(live["history"]["pools"]) == {"tiny.en"}


def test_a_router_whose_pods_are_all_busy_is_still_ready():
    # Found by schemathesis: /readyz said 503 no_ready_pods while the only slot was in use,
    # which would take a fully loaded router out of its Service.
    pools = _registry()
    runner = pools.resolve("tiny.en")
    assert not pools.any_ready()  # no pod at all
    runner.upsert_pod("a", "http://a")
    # White-box: every slot taken, and a ticket waiting, with no event loop to serve them.
    pool, now = runner._pool, runner.clock()
    while isinstance(pool.submit(audio_seconds=1.0, priority=Priority.BATCH, now=now), Granted):
        pass  # every slot taken: the next request queues
    assert pools.any_ready()
    pool.upsert_pod("a", "http://a", ready=False, now=now)
    assert not pools.any_ready()
