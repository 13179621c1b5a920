"""ASRPool objects → ``Pool``: defaults as the CRD declares them, and every rule enforced.

That the spec model's defaults and constraints are the CRD's is tests/unit/test_pool_spec.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asrpool_operator.logic.spec import (
    SERVER_OPENAI,
    Autoscaling,
    OperatorDefaults,
    PoolSpec,
    SpecError,
    is_quantity,
    parse_pool,
)

REPO = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "crds" / "asrpool.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def pool(spec: dict[str, Any], name: str = "large-v3") -> dict[str, Any]:
    return {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "metadata": {"name": name, "namespace": "speech", "uid": "u-1", "generation": 3},
        "spec": spec,
    }


def test_minimal_pool_gets_every_default_and_the_operators_image() -> None:
    parsed = parse_pool(pool({"model": "large-v3"}), OperatorDefaults(worker_image="img:1"))
    assert parsed.ref.name == "large-v3" and parsed.ref.namespace == "speech"
    assert parsed.generation == 3
    assert parsed.spec == PoolSpec(model="large-v3", image="img:1")
    assert parsed.spec.autoscaling is None and parsed.spec.model_source is None


def test_every_defaulted_field_says_its_default_in_kubectl_explain() -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        missing = []
        for key, sub in (schema.get("properties") or {}).items():
            if "default" in sub and not isinstance(sub["default"], dict):
                shown = (
                    str(sub["default"]).lower()
                    if isinstance(sub["default"], bool)
                    else str(sub["default"])
                )
                if f"Default: {shown}." not in sub.get("description", ""):
                    missing.append(f"{path}.{key}")
            missing += walk(sub, f"{path}.{key}")
        return missing

    assert walk(SCHEMA, "") == []


def test_every_field_of_the_spec_has_a_description() -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        missing = [] if schema.get("description") else [path]
        for key, sub in (schema.get("properties") or {}).items():
            missing += walk(sub, f"{path}.{key}")
        if "items" in schema and schema["items"].get("properties"):
            missing += [p for p in walk(schema["items"], f"{path}[]") if p != f"{path}[]"]
        return missing

    assert walk(SCHEMA["properties"]["spec"], "spec") == []


INVALID = [
    ({"model": ""}, "spec.model: must not be empty"),
    ({}, "spec.model: required"),
    ({"model": "has space"}, "spec.model: 'has space' must match"),
    ({"model": "m", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
     "spec.autoscaling.minReplicas: autoscaling.minReplicas must not exceed"),
    ({"model": "m", "autoscaling": {}}, "spec.autoscaling.maxReplicas: required"),
    ({"model": "m", "autoscaling": {"maxReplicas": 4, "stableWindowSeconds": 30,
                                    "panicWindowSeconds": 40}},
     "spec.autoscaling.panicWindowSeconds: autoscaling.panicWindowSeconds must not exceed"),
    ({"model": "m", "autoscaling": {"maxReplicas": 4, "maxScaleUpRate": 1}},
     "spec.autoscaling.maxScaleUpRate: must be greater than 1"),
    ({"model": "m", "concurrency": {"coldStartTimeoutSeconds": 0}},
     "spec.concurrency.coldStartTimeoutSeconds: must be greater than 0"),
    ({"model": "m", "concurrency": {"perPod": 0}},
     "spec.concurrency.perPod: concurrency.perPod must be at least 1"),
    ({"model": "m", "concurrency": {"perPod": 65}}, "spec.concurrency.perPod: must be at most 64"),
    ({"model": "m", "concurrency": {"queueTimeoutSeconds": 0}},
     "spec.concurrency.queueTimeoutSeconds: must be greater than 0"),
    ({"model": "m", "retry": {"ejection": {"baseEjectionSeconds": 200}}},
     "spec.retry.ejection: retry.ejection.baseEjectionSeconds must not exceed"),
    ({"model": "m", "retry": {"maxAttempts": -1}}, "spec.retry.maxAttempts: must be at least 0"),
    ({"model": "m", "retry": {"ejection": {"maxEjectionPercent": 101}}},
     "spec.retry.ejection.maxEjectionPercent: must be at most 100"),
    ({"model": "m", "realtime": {"silenceDurationMs": 5000, "maxChunkMs": 3000}},
     "spec.realtime: realtime.silenceDurationMs must be shorter than realtime.maxChunkMs"),
    ({"model": "m", "modelSource": {}}, "spec.modelSource: modelSource needs exactly one of"),
    ({"model": "m", "modelSource": {"baked": {"path": "/a"}, "hostPath": {"path": "/b"}}},
     "spec.modelSource: modelSource needs exactly one of"),
    ({"model": "m", "modelSource": {"hostPath": {"path": "relative"}}},
     "spec.modelSource.hostPath.path: 'relative' must match"),
    ({"model": "m", "modelSource": {"persistentVolumeClaim": {}}},
     "spec.modelSource.persistentVolumeClaim.claimName: required"),
    ({"model": "m", "resources": {"memory": "lots"}},
     "spec.resources.memory: 'lots' must be a positive quantity"),
    ({"model": "m", "resources": {"cpu": 0}}, "spec.resources.cpu: 0 must be a positive quantity"),
    ({"model": "m", "resources": {"gpus": -1}}, "spec.resources.gpus: must be at least 0"),
    ({"model": "m", "resources": {"tolerations": [{"operator": "Maybe"}]}},
     "spec.resources.tolerations[0].operator: 'Maybe' must be one of"),
    ({"model": "m", "server": {"type": "triton"}}, "spec.server.type: 'triton' must be one of"),
    ({"model": "m", "server": {"port": 0}}, "spec.server.port: must be at least 1"),
    ({"model": "m", "replicas": 1.5}, "spec.replicas: must be an integer"),
    ({"model": "m", "replicas": True}, "spec.replicas: must be an integer"),
    ({"model": "m", "env": [{"name": "A"}, {"name": "A"}]}, "spec.env[1].name: duplicate"),
    ({"model": "m", "args": ["ok", 3]}, "spec.args[1]: must be a string"),
    ({"model": "m", "imagePullPolicy": "Sometimes"},
     "spec.imagePullPolicy: 'Sometimes' must be one of"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "problem"), INVALID, ids=[p for _, p in INVALID])
def test_invalid_spec_is_refused_naming_the_field(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_pool(pool(spec))
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_all_problems_are_reported_at_once() -> None:
    spec = {"model": "", "concurrency": {"perPod": 0}, "server": {"port": 70000}}
    with pytest.raises(SpecError) as err:
        parse_pool(pool(spec))
    assert len(err.value.problems) == 3


@pytest.mark.parametrize(
    "name", ["Upper", "9starts-with-digit", "ends-with-", "x" * 57, "under_score", ""]
)
def test_pool_names_that_cannot_name_a_service_are_refused(name: str) -> None:
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_pool(pool({"model": "m"}, name=name))


def test_a_56_character_name_is_the_longest_allowed() -> None:
    assert parse_pool(pool({"model": "m"}, name="a" * 56)).ref.name == "a" * 56


def test_a_full_spec_is_read_field_by_field() -> None:
    spec = {
        "model": "large-v3",
        "aliases": ["whisper-1"],
        "image": "example.com/whisper:2",
        "imagePullSecrets": [{"name": "regcred"}],
        "server": {"type": SERVER_OPENAI, "port": 8000, "readinessPath": "/health",
                   "livenessPath": "/health", "runAsUser": 1000},
        "replicas": 3,
        "autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetInFlightPerPod": 1.5},
        "concurrency": {"perPod": 4, "maxQueue": 10, "queueTimeoutSeconds": 30},
        "resources": {"gpus": 2, "memory": "16Gi", "cpu": 4, "nodeSelector": {"b": "2", "a": "1"},
                      "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        "modelSource": {"hostPath": {"path": "/srv/models/large-v3"}},
    }  # fmt: skip
    s = parse_pool(pool(spec)).spec
    assert s.aliases == ("whisper-1",) and [r.name for r in s.image_pull_secrets] == ["regcred"]
    assert (s.server.type, s.server.port, s.server.run_as_user) == (SERVER_OPENAI, 8000, 1000)
    assert s.autoscaling == Autoscaling(
        min_replicas=2, max_replicas=6, target_in_flight_per_pod=1.5
    )
    assert (s.resources.gpus, s.resources.memory, s.resources.cpu) == (2, "16Gi", "4")
    assert s.resources.node_selector == {"a": "1", "b": "2"}
    assert s.env[0].value_from == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert s.model_source is not None and s.model_source.kind == "hostPath"
    assert s.model_source.model_dir == "/models"


def test_an_external_scaler_needs_no_max_replicas() -> None:
    """``enabled: false`` hands replicas to an HPA or KEDA, which have their own ceiling."""
    s = parse_pool(pool({"model": "m", "autoscaling": {"enabled": False}})).spec
    assert s.autoscaling is not None and not s.autoscaling.enabled


@pytest.mark.parametrize(
    ("value", "ok"),
    [("8Gi", True), ("500m", True), ("1.5", True), ("1e3", True), (2, True),
     ("0", False), (0, False), ("-1", False), ("-", False), ("lots", False), ("8 Gi", False),
     (True, False), (None, False)],
)  # fmt: skip
def test_quantities_follow_the_crd_rule(value: object, ok: bool) -> None:
    assert is_quantity(value) is ok
