"""What the router serves in Kubernetes mode, from ASRPools and EndpointSlices (pure)."""

from __future__ import annotations

from asrpool_contract.pool_spec import read_spec
from asrpool_router.logic.kube_view import (
    Endpoint,
    aliases,
    default_model,
    endpoints_of,
    pool_policy,
    pool_views,
)
from asrpool_router.logic.pool import PoolPolicy


def asrpool(name: str, model: str, **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {"model": model, **spec}}


def endpoint_slice(name: str, pool: str, port: int, *endpoints: dict) -> dict:
    return {
        "metadata": {"name": name, "labels": {"asrpool.dev/pool": pool}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def ep(ip: str, pod: str, **conditions: bool) -> dict:
    return {"addresses": [ip], "conditions": conditions, "targetRef": {"kind": "Pod", "name": pod}}


def test_policy_comes_from_the_spec_with_router_defaults_for_the_rest():
    policy = pool_policy(
        read_spec(
            {
                "model": "m",
                "concurrency": {"perPod": 3, "queueTimeoutSeconds": 30},
                "retry": {"maxAttempts": 6},
            }
        )
    )
    assert (policy.per_pod, policy.queue_timeout_s, policy.max_attempts) == (3, 30.0, 6)
    assert policy.max_queue == PoolPolicy().max_queue


def test_endpoints_carry_ready_and_terminating_and_name_the_pod():
    s = endpoint_slice(
        "w-abc",
        "tiny",
        9000,
        ep("10.0.0.1", "w-1", ready=True),
        ep("10.0.0.2", "w-2", ready=False),
        ep("10.0.0.3", "w-3", ready=False, serving=True, terminating=True),
        {"addresses": ["10.0.0.4"]},  # no conditions: ready
    )
    assert endpoints_of(s) == [
        Endpoint("w-1", "http://10.0.0.1:9000", True, False),
        Endpoint("w-2", "http://10.0.0.2:9000", False, False),
        Endpoint("w-3", "http://10.0.0.3:9000", False, True),
        Endpoint("http://10.0.0.4:9000", "http://10.0.0.4:9000", True, False),
    ]


def test_ipv6_addresses_are_bracketed_and_slices_without_our_port_are_ignored():
    s = endpoint_slice("w6", "tiny", 9000, ep("fd00::5", "w-6"))
    s["addressType"] = "IPv6"
    assert endpoints_of(s)[0].url == "http://[fd00::5]:9000"
    s["ports"] = [{"name": "metrics", "port": 1}, {"name": "grpc", "port": 2}]
    assert endpoints_of(s) == []


def test_views_join_slices_to_their_pool_and_skip_pools_being_deleted():
    pools = {
        "tiny": asrpool("tiny", "tiny.en"),
        "big": asrpool("big", "large-v3", concurrency={"perPod": 4}),
        "old": {
            **asrpool("old", "medium"),
            "metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        },
    }
    slices = {
        "tiny-1": endpoint_slice("tiny-1", "tiny", 9000, ep("10.0.0.1", "t-1")),
        "tiny-2": endpoint_slice("tiny-2", "tiny", 9000, ep("10.0.0.2", "t-2")),
        "big-1": endpoint_slice("big-1", "big", 9000, ep("10.0.1.1", "b-1")),
        "stray": endpoint_slice("stray", "nobody", 9000, ep("10.9.9.9", "x")),
    }
    views = pool_views(pools, slices)
    assert sorted(views) == ["large-v3", "tiny.en"]
    assert [e.pod_id for e in views["tiny.en"].endpoints] == ["t-1", "t-2"]
    assert views["large-v3"].policy.per_pod == 4
    assert default_model(views) == "large-v3"  # first by name without an annotation


def test_the_annotated_pool_is_the_default_and_a_duplicate_model_is_ignored():
    marked = asrpool("zeta", "tiny.en")
    marked["metadata"]["annotations"] = {"asrpool.dev/default-pool": "true"}
    views = pool_views(
        {"alpha": asrpool("alpha", "large-v3"), "zeta": marked, "zz": asrpool("zz", "tiny.en")}, {}
    )
    assert default_model(views) == "tiny.en" and views["tiny.en"].name == "zeta"
    assert default_model({}) is None


def test_aliases_reach_their_pool_and_whisper_1_alias_makes_the_default():
    big = asrpool("big", "large-v3", aliases=["whisper-1", "best"])
    tiny = asrpool("tiny", "tiny.en", aliases=["fast", "best", "large-v3"])
    views = pool_views({"big": big, "tiny": tiny}, {})
    assert default_model(views) == "large-v3"  # the pool that claims whisper-1
    # "best" is claimed twice and "large-v3" is a model's own name: neither is an alias.
    assert aliases(views) == {"fast": "tiny.en"}


def test_realtime_settings_come_from_the_spec():
    views = pool_views(
        {"p": asrpool("p", "tiny.en", realtime={"silenceDurationMs": 800, "maxChunkMs": 9000})}, {}
    )
    chunking = views["tiny.en"].chunking
    assert (chunking.silence_duration_ms, chunking.max_utterance_ms) == (800, 9000)
    assert chunking.partial_interval_ms == 400  # the default where the spec says nothing
