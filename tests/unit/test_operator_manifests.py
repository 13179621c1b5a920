"""``Pool`` → Deployment, Service, PodDisruptionBudget: what each pod gets, and why it is stable."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asrpool_operator.logic.labels import (
    SPEC_HASH_ANNOTATION,
    format_selector,
    parse_selector,
    selector_labels,
)
from asrpool_operator.logic.manifests import children, spec_hash, worker_args
from asrpool_operator.logic.spec import OperatorDefaults, Pool, parse_pool


def make(spec: dict[str, Any], name: str = "large-v3") -> Pool:
    obj = {
        "metadata": {"name": name, "namespace": "speech", "uid": "uid-7", "generation": 1},
        "spec": {"model": "large-v3", **spec},
    }
    return parse_pool(obj, OperatorDefaults(worker_image="ghcr.io/asrpool/worker:0.1.0"))


def manifests(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in children(make(spec))}


def container(spec: dict[str, Any]) -> dict[str, Any]:
    pod = manifests(spec)["Deployment"]["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return only


def pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return manifests(spec)["Deployment"]["spec"]["template"]["spec"]


def test_a_pool_has_a_deployment_a_headless_service_and_a_disruption_budget() -> None:
    got = manifests({})
    assert sorted(got) == ["Deployment", "PodDisruptionBudget", "Service"]
    assert {m["metadata"]["name"] for m in got.values()} == {"large-v3-worker"}
    assert {m["metadata"]["namespace"] for m in got.values()} == {"speech"}
    assert got["Service"]["spec"]["clusterIP"] == "None"
    assert got["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert got["PodDisruptionBudget"]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_every_child_is_controlled_by_the_pool_so_it_is_deleted_with_it() -> None:
    for m in manifests({}).values():
        assert m["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "asrpool.dev/v1alpha1",
                "kind": "ASRPool",
                "name": "large-v3",
                "uid": "uid-7",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_selectors_pick_the_pools_worker_pods_and_the_pods_carry_every_label() -> None:
    got = manifests({})
    want = {
        "app.kubernetes.io/part-of": "asrpool",
        "app.kubernetes.io/component": "worker",
        "asrpool.dev/pool": "large-v3",
    }
    assert got["Deployment"]["spec"]["selector"] == {"matchLabels": want}
    assert got["Service"]["spec"]["selector"] == want
    assert got["PodDisruptionBudget"]["spec"]["selector"] == {"matchLabels": want}
    pod_labels = got["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert want.items() <= pod_labels.items()
    assert pod_labels["app.kubernetes.io/managed-by"] == "asrpool-operator"
    for m in got.values():
        assert m["metadata"]["labels"] == pod_labels


@pytest.mark.parametrize(
    ("resources", "requests", "limits"),
    [
        ({}, None, None),
        ({"gpus": 1}, {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}),
        ({"gpus": 2, "memory": "16Gi", "cpu": "4"},
         {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
         {"memory": "16Gi", "nvidia.com/gpu": "2"}),
        ({"gpus": 1, "gpuResourceName": "nvidia.com/mig-1g.10gb"},
         {"nvidia.com/mig-1g.10gb": "1"}, {"nvidia.com/mig-1g.10gb": "1"}),
        ({"cpu": "500m"}, {"cpu": "500m"}, None),
    ],
)  # fmt: skip
def test_gpu_and_memory_requests_equal_limits_and_cpu_has_no_limit(
    resources: dict[str, Any], requests: dict[str, str] | None, limits: dict[str, str] | None
) -> None:
    got = container({"resources": resources})["resources"]
    assert got.get("requests") == requests
    assert got.get("limits") == limits


@pytest.mark.parametrize(
    ("spec", "args"),
    [
        ({}, ["--device", "cpu", "--num-workers", "2", "--drain-timeout", "60"]),
        ({"resources": {"gpus": 1}, "concurrency": {"perPod": 4}},
         ["--device", "cuda", "--num-workers", "4", "--drain-timeout", "60"]),
        ({"drain": {"timeoutSeconds": 300}},
         ["--device", "cpu", "--num-workers", "2", "--drain-timeout", "300"]),
        ({"modelSource": {"baked": {"path": "/models/model"}}},
         ["--device", "cpu", "--num-workers", "2", "--drain-timeout", "60",
          "--model", "/models/model"]),
        ({"modelSource": {"persistentVolumeClaim": {"claimName": "m"}, "mountPath": "/data"},
          "args": ["--compute-type", "int8"]},
         ["--device", "cpu", "--num-workers", "2", "--drain-timeout", "60", "--model", "/data",
          "--compute-type", "int8"]),
    ],
)  # fmt: skip
def test_our_worker_gets_its_command_line_from_the_spec(
    spec: dict[str, Any], args: list[str]
) -> None:
    c = container(spec)
    assert c["command"] == ["asrpool"]
    head = ["worker", "--host", "0.0.0.0", "--port", "9000", "--model-name", "large-v3"]
    assert c["args"] == head + args


def test_user_args_come_last_so_they_override_the_operators_flags() -> None:
    args = worker_args(make({"args": ["--device", "cpu"], "resources": {"gpus": 1}}))
    assert args[-2:] == ["--device", "cpu"]
    assert args.index("cuda") < len(args) - 2


def test_a_third_party_server_runs_its_own_entrypoint_with_the_users_args() -> None:
    spec = {
        "image": "ghcr.io/speaches-ai/speaches:latest-cuda",
        "server": {"type": "openai-compatible", "port": 8000, "readinessPath": "/health",
                   "livenessPath": "/health"},
        "args": ["--log-level", "info"],
    }  # fmt: skip
    c = container(spec)
    assert "command" not in c
    assert c["args"] == ["--log-level", "info"]
    assert c["image"] == "ghcr.io/speaches-ai/speaches:latest-cuda"
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["securityContext"]["readOnlyRootFilesystem"] is False
    assert "runAsUser" not in pod_spec(spec)["securityContext"]
    assert manifests(spec)["Service"]["spec"]["ports"][0]["port"] == 8000


def test_probes_check_readiness_liveness_and_allow_a_slow_first_start() -> None:
    c = container({})
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_pods_drain_before_they_stop() -> None:
    spec = {"drain": {"preStopSeconds": 10, "timeoutSeconds": 120}}
    assert container(spec)["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert pod_spec(spec)["terminationGracePeriodSeconds"] == 10 + 120 + 5
    assert "lifecycle" not in container({"drain": {"preStopSeconds": 0}})


def test_worker_pods_are_locked_down() -> None:
    pod = pod_spec({})
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    c = pod["containers"][0]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


@pytest.mark.parametrize(
    ("source", "volume", "mount"),
    [
        ({"persistentVolumeClaim": {"claimName": "models", "subPath": "large-v3"}},
         {"name": "model", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
         {"name": "model", "mountPath": "/models", "readOnly": True, "subPath": "large-v3"}),
        ({"hostPath": {"path": "/srv/models"}, "mountPath": "/m"},
         {"name": "model", "hostPath": {"path": "/srv/models", "type": "Directory"}},
         {"name": "model", "mountPath": "/m", "readOnly": True}),
        ({"baked": {"path": "/models/model"}}, None, None),
    ],
)  # fmt: skip
def test_model_sources_become_volumes(
    source: dict[str, Any], volume: dict[str, Any] | None, mount: dict[str, Any] | None
) -> None:
    spec = {"modelSource": source}
    volumes = [v for v in pod_spec(spec)["volumes"] if v["name"] == "model"]
    mounts = [m for m in container(spec)["volumeMounts"] if m["name"] == "model"]
    assert volumes == ([volume] if volume else [])
    assert mounts == ([mount] if mount else [])


def test_user_env_replaces_the_operators_variable_of_the_same_name() -> None:
    env = container({"env": [{"name": "HOME", "value": "/home/me"}, {"name": "X", "value": "1"}]})[
        "env"
    ]
    assert env == [
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "HOME", "value": "/home/me"},
        {"name": "X", "value": "1"},
    ]


@pytest.mark.parametrize(
    ("gpus", "rolling"),
    [(0, {"maxSurge": 1, "maxUnavailable": 0}), (1, {"maxSurge": 0, "maxUnavailable": 1})],
)
def test_gpu_pools_replace_pods_one_at_a_time_without_a_surge_pod(
    gpus: int, rolling: dict[str, int]
) -> None:
    strategy = manifests({"resources": {"gpus": gpus}})["Deployment"]["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": rolling}


def test_placement_and_pull_secrets_reach_the_pod() -> None:
    spec = {
        "imagePullSecrets": [{"name": "regcred"}],
        "resources": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    }
    pod = pod_spec(spec)
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_replicas_follow_the_spec() -> None:
    assert manifests({"replicas": 5})["Deployment"]["spec"]["replicas"] == 5


# --- idempotence: the same pool always gives the same bytes


def test_the_same_pool_gives_byte_identical_manifests_and_hashes() -> None:
    spec = {"resources": {"gpus": 1, "nodeSelector": {"b": "2", "a": "1"}}, "args": ["-x"]}
    first = json.dumps(children(make(spec)))
    second = json.dumps(children(make(copy.deepcopy(spec))))
    assert first == second


def test_the_hash_annotation_is_the_hash_of_the_rest_of_the_manifest() -> None:
    for m in children(make({})):
        stamped = m["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        assert stamped == spec_hash(m)
        assert len(stamped) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": 2},
        {"image": "other:1"},
        {"resources": {"gpus": 1}},
        {"args": ["--compute-type", "int8"]},
        {"concurrency": {"perPod": 3}},
    ],
)
def test_any_change_to_the_deployment_changes_its_hash(change: dict[str, Any]) -> None:
    before = manifests({})["Deployment"]["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    after = manifests(change)["Deployment"]["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert before != after


def test_router_only_settings_do_not_touch_the_deployment() -> None:
    before = manifests({})["Deployment"]
    after = manifests({"retry": {"maxAttempts": 2}, "realtime": {"partialIntervalMs": 300}})
    assert after["Deployment"] == before


@given(
    replicas=st.integers(0, 50),
    gpus=st.integers(0, 8),
    per_pod=st.integers(1, 64),
    env=st.dictionaries(
        st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True), st.text(max_size=8), max_size=4
    ),
)
def test_manifests_are_a_function_of_the_spec(
    replicas: int, gpus: int, per_pod: int, env: dict[str, str]
) -> None:
    spec = {
        "replicas": replicas,
        "resources": {"gpus": gpus},
        "concurrency": {"perPod": per_pod},
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    a, b = children(make(spec)), children(make(copy.deepcopy(spec)))
    assert json.dumps(a, sort_keys=False) == json.dumps(b, sort_keys=False)
    dep = a[0]
    assert dep["spec"]["selector"]["matchLabels"] == selector_labels("large-v3")
    names = [e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names))  # server-side apply refuses duplicate keys


def test_with_a_token_secret_our_worker_mounts_it_and_requires_the_token() -> None:
    pool = parse_pool(
        {
            "metadata": {"name": "tiny", "namespace": "speech", "uid": "u", "generation": 1},
            "spec": {"model": "tiny.en"},
        },
        OperatorDefaults(worker_image="w:1", worker_token_secret="rel-asrpool-worker-token"),
    )
    pod = {m["kind"]: m for m in children(pool)}["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"][-2:] == ["--worker-token-file", "/etc/asrpool/worker-token/token"]
    assert {"name": "worker-token", "mountPath": "/etc/asrpool/worker-token", "readOnly": True} in (
        c["volumeMounts"]
    )
    (volume,) = [v for v in pod["volumes"] if v["name"] == "worker-token"]
    assert volume["secret"]["secretName"] == "rel-asrpool-worker-token"
    assert volume["secret"]["items"] == [{"key": "token", "path": "token"}]


def test_without_a_token_secret_or_for_a_third_party_server_nothing_is_mounted() -> None:
    assert "--worker-token-file" not in container({})["args"]
    third_party = parse_pool(
        {
            "metadata": {"name": "x", "namespace": "speech", "uid": "u", "generation": 1},
            "spec": {"model": "m", "image": "other:1", "server": {"type": "openai-compatible"}},
        },
        OperatorDefaults(worker_image="w:1", worker_token_secret="s"),
    )
    pod = {m["kind"]: m for m in children(third_party)}["Deployment"]["spec"]["template"]["spec"]
    assert all(v["name"] != "worker-token" for v in pod["volumes"])


def test_a_label_selector_reads_back_as_the_labels_it_selects() -> None:
    labels = selector_labels("large-v3")
    assert parse_selector(format_selector(labels)) == labels
    assert parse_selector(" app = router ,tier==front") == {"app": "router", "tier": "front"}


@pytest.mark.parametrize("selector", ["app!=router", "app", "!app", "app in (a,b)", "=x", ""])
def test_a_selector_that_is_not_key_equals_value_is_refused(selector: str) -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_selector(selector)
