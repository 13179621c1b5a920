"""The CRD file itself, the chart's copy of it, and every example checked against it.

Examples are checked twice without a cluster: against the CRD's OpenAPI schema, strictly (an
unknown field is an error, as ``kubectl apply`` with strict field validation makes it), and by
the operator's parser, which also enforces the CRD's CEL rules. tests/k8s applies them to a
real API server with ``--dry-run=server``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from asrpool_operator.logic.spec import parse_pool

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "asrpool.yaml"
CRD = yaml.safe_load(CRD_PATH.read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_the_chart_ships_a_byte_identical_copy_of_the_crd() -> None:
    copy = REPO / "charts" / "asrpool" / "crds" / "asrpool.yaml"
    assert copy.read_bytes() == CRD_PATH.read_bytes(), "cp crds/asrpool.yaml charts/asrpool/crds/"


def test_the_crd_names_the_kind_its_short_name_and_category() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], names["kind"], names["plural"]) == (
        "asrpool.dev",
        "ASRPool",
        "asrpools",
    )
    assert names["shortNames"] == ["asrp"]
    assert names["categories"]
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == ("v1alpha1", True, True)


def test_scale_and_status_subresources_let_kubectl_scale_and_hpa_work() -> None:
    assert VERSION["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    assert SCHEMA["properties"]["status"]["properties"]["selector"]["type"] == "string"


def test_printer_columns_show_model_ready_desired_queue_and_age() -> None:
    columns = [c["name"] for c in VERSION["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Model", "Ready", "Desired", "Queue", "Age"]
    paths = {c["name"]: c["jsonPath"] for c in VERSION["additionalPrinterColumns"]}
    assert paths["Queue"] == ".status.queueDepth"
    assert paths["Desired"] == ".spec.replicas"


def test_every_cel_rule_has_a_message() -> None:
    def rules(schema: dict[str, Any]) -> list[dict[str, Any]]:
        found = list(schema.get("x-kubernetes-validations") or [])
        for sub in (schema.get("properties") or {}).values():
            found += rules(sub)
        if isinstance(schema.get("items"), dict):
            found += rules(schema["items"])
        return found

    found = rules(SCHEMA)
    assert len(found) >= 7
    assert all(r.get("message") for r in found)


# --- a strict structural-schema check (the subset the CRD uses)


def check(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema``; unknown fields included."""
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            return [f"{path}: must be an integer or a string"]
        return []
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in types and not isinstance(value, types[kind]):
        return [f"{path}: must be {kind}"]
    if kind in ("integer", "number") and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind == "integer" and value != int(value))
    ):
        return [f"{path}: must be {kind}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and (
            value < schema["minimum"]
            or (schema.get("exclusiveMinimum") and value == schema["minimum"])
        ):
            errors.append(f"{path}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get(
            "minLength", 0
        ):
            errors.append(f"{path}: bad length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: too many items")
        for i, item in enumerate(value):
            errors += check(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties")
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}.{key}: required")
        for key, item in value.items():
            if props is not None and key in props:
                errors += check(item, props[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += check(item, schema["additionalProperties"], f"{path}.{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{key}: unknown field")
    return errors


def test_the_strict_check_catches_what_it_must() -> None:
    bad = {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "metadata": {"name": "x"},
        "spec": {"model": "m", "replica": 2, "resources": {"gpus": "1"}, "server": {"port": 0}},
    }
    assert check(bad, SCHEMA) == [
        ".spec.replica: unknown field",
        ".spec.resources.gpus: must be integer",
        ".spec.server.port: below minimum",
    ]


def test_there_are_examples() -> None:
    assert [p.name[:3] for p in EXAMPLES] == ["01-", "02-", "03-", "04-"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_matches_the_crd_schema(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs and all(d["kind"] == "ASRPool" for d in docs)
    for doc in docs:
        assert check(doc, SCHEMA) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_the_operators_parser(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            parse_pool({**doc, "metadata": {**doc["metadata"], "namespace": "speech"}})
