"""The ASRPool spec model and the CRD's schema are one API: neither may drift from the other.

``asrpool_contract.pool_spec`` is the spec as the operator and the router read it;
``crds/asrpool.yaml`` is the spec as the API server and ``kubectl explain`` see it. ``drift``
walks the CRD's ``spec`` schema and the model's JSON schema together, both ways: the same
properties at every level (sections, list items, maps), the same required fields, types, enums,
bounds, patterns, lengths and defaults (a section's default as the API server fills it in). CEL
rules have no JSON-schema form: ``tests/unit/test_operator_spec.py`` checks their counterparts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from asrpool.cli import build_parser, router_settings
from asrpool_contract.pool_spec import PoolSpec
from asrpool_router.settings import RouterSettings

REPO = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "crds" / "asrpool.yaml").read_text())
CRD_SPEC = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
MODEL = PoolSpec.model_json_schema(by_alias=True)

COMPARED = ("enum", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "pattern",
            "maxItems", "maxProperties")  # fmt: skip
# What the model's JSON schema may say besides COMPARED; anything else (pydantic writing a
# constraint it cannot translate, such as "ge") is a failure, not silently skipped.
STRUCTURE = {"type", "properties", "items", "additionalProperties", "required", "default",
             "anyOf", "$ref", "$defs", "const", "title", "description"}  # fmt: skip
NULL = {"type": "null"}


def _empty(value: Any) -> bool:
    return value in (None, [], {})  # no default and an empty one read the same


def _no_empties(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_empties(v) for k, v in value.items() if not _empty(v)}
    return value


def _filled(node: dict[str, Any], value: Any) -> Any:
    """``value`` with the defaults the API server fills in below ``node``."""
    if not isinstance(value, dict) or "properties" not in node:
        return value
    out = dict(value)
    for key, sub in node["properties"].items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if key in out:
            out[key] = _filled(sub, out[key])
    return out


def _resolve(model: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A model node with its $ref followed and its null alternative (an Optional) dropped."""
    while True:
        rest = {k: v for k, v in node.items() if k not in ("$ref", "anyOf")}
        if "$ref" in node:
            node = {**model["$defs"][node["$ref"].rsplit("/", 1)[1]], **rest}
        elif "anyOf" in node and NULL in node["anyOf"]:
            others = [n for n in node["anyOf"] if n != NULL]
            node = {**(others[0] if len(others) == 1 else {"anyOf": others}), **rest}
        else:
            return node


def _crd_shape(node: dict[str, Any]) -> dict[str, Any]:
    shape = {k: node[k] for k in COMPARED if k in node}
    if shape.pop("exclusiveMinimum", False):  # OpenAPI v3.0: a flag on minimum
        shape["exclusiveMinimum"] = shape.pop("minimum")
    shape["type"] = "int-or-string" if node.get("x-kubernetes-int-or-string") else node["type"]
    shape["required"] = sorted(node.get("required", []))
    shape["open"] = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    default = _no_empties(_filled(node, node.get("default")))
    if not _empty(default):
        shape["default"] = default
    return shape


def _model_shape(node: dict[str, Any]) -> dict[str, Any]:
    shape = {k: node[k] for k in COMPARED if k in node}
    shape["unmapped"] = sorted(set(node) - STRUCTURE - set(COMPARED))
    if "const" in node:
        shape["enum"] = [node["const"]]
    if node.get("anyOf") == [{"type": "integer"}, {"type": "string"}]:
        shape["type"] = "int-or-string"
    else:
        shape["type"] = node.get("type")
    shape["required"] = sorted(node.get("required", []))
    shape["open"] = node.get("additionalProperties") is True
    default = _no_empties(node.get("default"))
    if not _empty(default):
        shape["default"] = default
    return shape


def drift(crd: dict[str, Any], model: dict[str, Any], path: str = "spec") -> list[str]:
    """Every way the CRD's schema at ``path`` and the model's (its JSON schema) differ."""

    def walk(c: dict[str, Any], m: dict[str, Any], path: str) -> list[str]:
        m = _resolve(model, m)
        ours, theirs = _crd_shape(c), _model_shape(m)
        theirs_unmapped = theirs.pop("unmapped")
        found = [f"{path}: the model's schema says {k!r}, unknown here" for k in theirs_unmapped]
        found += [
            f"{path}: {key} is {ours.get(key)!r} in the CRD, {theirs.get(key)!r} in the model"
            for key in sorted(set(ours) | set(theirs))
            if ours.get(key) != theirs.get(key)
        ]
        c_props, m_props = c.get("properties", {}), m.get("properties", {})
        for key in sorted(set(c_props) | set(m_props)):
            if key not in m_props:
                found.append(f"{path}.{key}: in the CRD, not in the model")
            elif key not in c_props:
                found.append(f"{path}.{key}: in the model, not in the CRD")
            else:
                found += walk(c_props[key], m_props[key], f"{path}.{key}")
        if "items" in c or "items" in m:
            found += walk(c.get("items", {}), m.get("items", {}), f"{path}[]")
        c_map, m_map = c.get("additionalProperties"), m.get("additionalProperties")
        if isinstance(c_map, dict) or isinstance(m_map, dict):
            found += walk(c_map or {}, m_map or {}, f"{path}{{}}")
        return found

    return walk(crd, model, path)


def test_the_model_is_the_crds_spec_field_for_field() -> None:
    assert drift(CRD_SPEC, MODEL) == []


def _crd_with(change: Any) -> dict[str, Any]:
    crd = copy.deepcopy(CRD_SPEC)
    change(crd["properties"])
    return crd


def _model_with(change: Any) -> dict[str, Any]:
    model = copy.deepcopy(MODEL)
    change(model["$defs"])
    return model


def _rename(props: dict[str, Any]) -> None:
    concurrency = props["concurrency"]["properties"]
    concurrency["queueTimeoutSecs"] = concurrency.pop("queueTimeoutSeconds")


@pytest.mark.parametrize(
    ("crd", "model", "expected"),
    [
        (_crd_with(_rename), MODEL, "spec.concurrency.queueTimeoutSecs: in the CRD, not"),
        (_crd_with(_rename), MODEL, "spec.concurrency.queueTimeoutSeconds: in the model, not"),
        (
            _crd_with(lambda p: p["drain"]["properties"]["timeoutSeconds"].update(default=30)),
            MODEL,
            "spec.drain.timeoutSeconds: default is 30 in the CRD, 60 in the model",
        ),
        (
            CRD_SPEC,
            _model_with(lambda d: d["Drain"]["properties"]["timeoutSeconds"].update(default=30)),
            "spec.drain.timeoutSeconds: default is 60 in the CRD, 30 in the model",
        ),
        (
            _crd_with(lambda p: p["retry"]["properties"]["ejection"]["default"].update(
                maxEjectionPercent=40)),
            MODEL,
            "spec.retry.ejection: default is",
        ),
        (
            _crd_with(lambda p: p["server"]["properties"]["type"]["enum"].append("triton")),
            MODEL,
            "spec.server.type: enum is",
        ),
        (
            _crd_with(lambda p: p["resources"]["properties"]["gpus"].update(maximum=8)),
            MODEL,
            "spec.resources.gpus: maximum is 8 in the CRD, 16 in the model",
        ),
        (
            _crd_with(lambda p: p["env"]["items"]["required"].append("value")),
            MODEL,
            "spec.env[]: required is",
        ),
        (
            _crd_with(lambda p: p["replicas"].update(type="number")),
            MODEL,
            "spec.replicas: type is 'number' in the CRD, 'integer' in the model",
        ),
    ],
    ids=["renamed-crd", "renamed-model", "default-crd", "default-model", "section-default",
         "enum", "maximum", "required", "type"],
)  # fmt: skip
def test_the_check_sees_every_kind_of_drift(
    crd: dict[str, Any], model: dict[str, Any], expected: str
) -> None:
    found = drift(crd, model)
    assert any(f.startswith(expected) for f in found), found


SPEC_FLAGS = ("per_pod", "max_queue", "queue_timeout_s", "max_attempts", "request_timeout_s",
              "eject_after", "ejection_s", "max_ejection_percent")  # fmt: skip


def test_the_static_routers_flags_default_to_the_specs_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``asrpool router --backend`` serves one pool; unset, its flags are an ASRPool's defaults
    (``RouterSettings`` takes them from the model; the flags are literals, to keep the command
    line from importing pydantic)."""
    for name in ("ASRPOOL_PER_POD", "ASR_MAX_CONCURRENT", "ASRPOOL_MAX_QUEUE",
                 "ASRPOOL_QUEUE_TIMEOUT", "ASRPOOL_MAX_ATTEMPTS", "ASR_MAX_RETRIES",
                 "ASRPOOL_REQUEST_TIMEOUT", "ASR_REQUEST_TIMEOUT", "ASRPOOL_EJECT_AFTER",
                 "ASRPOOL_EJECTION_TIME", "ASRPOOL_MAX_EJECTION_PERCENT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["router", "--no-auth", "--backend", "http://w:9000"])
    settings = router_settings(args, backends=["http://w:9000"])
    defaults = RouterSettings()
    assert {f: getattr(settings, f) for f in SPEC_FLAGS} == {
        f: getattr(defaults, f) for f in SPEC_FLAGS
    }
