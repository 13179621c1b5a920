"""The ASRPool spec: one model of ``spec`` in ``crds/asrpool.yaml``, and the home of its defaults.

The CRD is the API users write; this is the same API as Python, read by the operator (which
builds the pool's Deployment from it) and by the router (which serves the pool by it). Every
field has the CRD's name in snake case as its attribute (``…Seconds`` shortened to ``_s``:
``queueTimeoutSeconds`` is ``queue_timeout_s``) and the CRD's name as its alias; a section the
CRD defaults to ``{}`` defaults to the section with its own defaults. The CRD's bounds, enums,
patterns and required fields are the fields' constraints, and its CEL rules are the validators
here, with the same messages. ``tests/unit/test_pool_spec.py`` walks the CRD's schema and this
model's JSON schema together, so the two cannot drift apart.

``read_spec`` is the way in: it checks everything again (an object read from a file, or stored
before a rule existed, never went through the API server's validation) and raises one
``SpecError`` listing every problem, each naming its field the way ``kubectl`` does
(``spec.concurrency.perPod: must be at most 64``). An absent field and a null one mean the
same. Integers must be integers and strings strings, as the API server wants them.

Pure: pydantic only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

SERVER_ASRPOOL: Final = "asrpool"
SERVER_OPENAI: Final = "openai-compatible"

# resource.Quantity's grammar (what kube-apiserver accepts for cpu and memory).
_QUANTITY = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_NUMBER = re.compile(r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))")
_RULE = "spec_rule"  # the error type of the CEL rules' counterparts below


def is_quantity(value: object) -> bool:
    """A positive resource.Quantity, as the CRD's rule says (``8Gi``, ``500m``, ``2``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    if not isinstance(value, str) or not _QUANTITY.match(value):
        return False
    number = _NUMBER.match(value)
    return number is not None and float(number.group(0)) > 0


def _rule(message: str, *at: str | int) -> PydanticCustomError:
    """A broken CEL rule; ``at`` is its fieldPath below the object it is checked on."""
    return PydanticCustomError(_RULE, message, {"at": at})


def _quantity(value: object) -> str:
    if not is_quantity(value):
        raise PydanticCustomError(
            _RULE, f"{value!r} must be a positive quantity such as 8Gi, 2 or 500m"
        )
    return str(value)


def _at_least_one_slot(per_pod: int) -> int:
    if per_pod < 1:
        raise _rule(
            "concurrency.perPod must be at least 1: a pod with no slots never serves a request"
        )
    return per_pod


def _alias(name: str) -> str:
    return to_camel(name.removesuffix("_s") + "_seconds" if name.endswith("_s") else name)


Name = Annotated[StrictStr, Field(min_length=1)]
ModelName = Annotated[Name, Field(max_length=128)]
AbsolutePath = Annotated[StrictStr, Field(pattern="^/", max_length=256)]
Arg = Annotated[StrictStr, Field(max_length=1024)]
# int-or-string in the CRD; always the string here (what a Pod's resources take).
Quantity = Annotated[str, PlainValidator(_quantity, json_schema_input_type=int | str)]


class _Section(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="ignore",  # the API server prunes unknown fields; so do we
        alias_generator=_alias,
        validate_by_alias=True,
        validate_by_name=True,
        protected_namespaces=(),
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None}
        return data


class SecretRef(_Section):
    name: Annotated[Name, Field(max_length=253)]


class Server(_Section):
    type: Literal["asrpool", "openai-compatible"] = SERVER_ASRPOOL
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 9000
    readiness_path: AbsolutePath = "/readyz"
    liveness_path: AbsolutePath = "/healthz"
    run_as_user: Annotated[StrictInt, Field(ge=1)] | None = None  # None: the image's own

    @property
    def is_asrpool(self) -> bool:
        return self.type == SERVER_ASRPOOL


class Autoscaling(_Section):
    """How the operator sets spec.replicas (``asrpool_operator.logic.autoscale`` reads it)."""

    # False: replicas are someone else's (kubectl scale, an HPA or KEDA); the operator reports.
    enabled: StrictBool = True
    min_replicas: Annotated[StrictInt, Field(ge=0, le=1000)] = 1
    # Only the operator's own rule needs a ceiling; an external scaler has its own.
    max_replicas: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    target_in_flight_per_pod: Annotated[StrictFloat, Field(gt=0)] | None = None  # None: perPod
    target_queue_depth: Annotated[StrictInt, Field(ge=0)] = 0
    stable_window_s: Annotated[StrictInt, Field(ge=6, le=3600)] = 60
    panic_window_s: Annotated[StrictInt, Field(ge=0, le=3600)] = 6  # 0: no panic mode
    max_scale_up_rate: Annotated[StrictFloat, Field(gt=1)] = 2.0  # times the ready pods, at most
    scale_down_stabilization_s: Annotated[StrictInt, Field(ge=0, le=3600)] = 300
    scale_to_zero_delay_s: Annotated[StrictInt, Field(ge=0, le=86400)] = 900

    @model_validator(mode="after")
    def _rules(self) -> Autoscaling:
        if self.enabled and self.max_replicas is None:
            raise _rule("required while autoscaling.enabled is true", "maxReplicas")
        if self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise _rule(
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas", "minReplicas"
            )
        if self.panic_window_s > self.stable_window_s:
            raise _rule(
                "autoscaling.panicWindowSeconds must not exceed autoscaling.stableWindowSeconds",
                "panicWindowSeconds",
            )
        return self


class Concurrency(_Section):
    per_pod: Annotated[StrictInt, Field(le=64), AfterValidator(_at_least_one_slot)] = 2
    max_queue: Annotated[StrictInt, Field(ge=0)] = 64
    queue_timeout_s: Annotated[StrictFloat, Field(gt=0)] = 120.0
    cold_start_timeout_s: Annotated[StrictFloat, Field(gt=0)] = 600.0


class Ejection(_Section):
    consecutive_failures: Annotated[StrictInt, Field(ge=1, le=100)] = 3
    base_ejection_s: Annotated[StrictFloat, Field(ge=0)] = 5.0
    max_ejection_s: Annotated[StrictFloat, Field(ge=0)] = 120.0
    max_ejection_percent: Annotated[StrictInt, Field(ge=0, le=100)] = 50

    @model_validator(mode="after")
    def _rules(self) -> Ejection:
        if self.base_ejection_s > self.max_ejection_s:
            raise _rule(
                "retry.ejection.baseEjectionSeconds must not exceed "
                "retry.ejection.maxEjectionSeconds"
            )
        return self


class Retry(_Section):
    max_attempts: Annotated[StrictInt, Field(ge=0, le=100)] = 0  # 0: no cap but the deadline
    request_timeout_s: Annotated[StrictFloat, Field(gt=0)] = 300.0
    # Deprecated and ignored: only checked, so that old pools stay valid.
    backoff_base_s: Annotated[StrictFloat, Field(ge=0)] | None = None
    backoff_cap_s: Annotated[StrictFloat, Field(ge=0)] | None = None
    ejection: Ejection = Ejection()


class Toleration(_Section):
    key: StrictStr | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: StrictStr | None = None
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: StrictInt | None = None


class Resources(_Section):
    gpus: Annotated[StrictInt, Field(ge=0, le=16)] = 0
    gpu_resource_name: Annotated[Name, Field(max_length=128)] = "nvidia.com/gpu"
    memory: Quantity | None = None
    cpu: Quantity | None = None
    node_selector: dict[str, StrictStr] = Field(default_factory=dict, max_length=32)
    tolerations: Annotated[tuple[Toleration, ...], Field(max_length=32)] = ()


class Realtime(_Section):
    silence_duration_ms: Annotated[StrictInt, Field(ge=30, le=10_000)] = 500
    max_chunk_ms: Annotated[StrictInt, Field(ge=2_000, le=30_000)] = 12_000
    partial_interval_ms: Annotated[StrictInt, Field(ge=100, le=10_000)] = 400

    @model_validator(mode="after")
    def _rules(self) -> Realtime:
        if self.silence_duration_ms >= self.max_chunk_ms:
            raise _rule("realtime.silenceDurationMs must be shorter than realtime.maxChunkMs")
        return self


class EnvVar(_Section):
    name: Annotated[Name, Field(max_length=256)]
    value: StrictStr | None = None
    value_from: dict[str, Any] | None = None  # as in a Pod: secretKeyRef, fieldRef, ...


class Baked(_Section):
    path: AbsolutePath  # in the image


class PersistentVolumeClaim(_Section):
    claim_name: Annotated[Name, Field(max_length=253)]
    sub_path: Annotated[StrictStr, Field(max_length=256)] | None = None
    read_only: StrictBool = True


class HostPath(_Section):
    path: AbsolutePath  # on the node


class ModelSource(_Section):
    """Exactly one of baked (a path in the image), a PVC or a host directory."""

    mount_path: AbsolutePath = "/models"
    baked: Baked | None = None
    persistent_volume_claim: PersistentVolumeClaim | None = None
    host_path: HostPath | None = None

    @model_validator(mode="after")
    def _rules(self) -> ModelSource:
        if [self.baked, self.persistent_volume_claim, self.host_path].count(None) != 2:
            raise _rule("modelSource needs exactly one of baked, persistentVolumeClaim, hostPath")
        return self

    @property
    def kind(self) -> Literal["baked", "persistentVolumeClaim", "hostPath"]:
        if self.baked is not None:
            return "baked"
        return "persistentVolumeClaim" if self.persistent_volume_claim else "hostPath"

    @property
    def model_dir(self) -> str:
        """The model's directory inside the container."""
        return self.baked.path if self.baked is not None else self.mount_path


class Drain(_Section):
    pre_stop_s: Annotated[StrictInt, Field(ge=0, le=120)] = 5
    timeout_s: Annotated[StrictInt, Field(ge=1, le=3600)] = 60

    @property
    def grace_period_s(self) -> int:
        # The kubelet's clock starts before preStop; 5 s more lets the process exit on its own.
        return self.pre_stop_s + self.timeout_s + 5


class PoolSpec(_Section):
    model: Annotated[ModelName, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
    aliases: Annotated[tuple[ModelName, ...], Field(max_length=16)] = ()
    image: Annotated[StrictStr, Field(max_length=512)] | None = None  # None: the operator's
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: Annotated[tuple[SecretRef, ...], Field(max_length=16)] = ()
    server: Server = Server()
    replicas: Annotated[StrictInt, Field(ge=0)] = 1
    autoscaling: Autoscaling | None = None
    concurrency: Concurrency = Concurrency()
    retry: Retry = Retry()
    resources: Resources = Resources()
    realtime: Realtime = Realtime()
    args: Annotated[tuple[Arg, ...], Field(max_length=64)] = ()
    env: Annotated[tuple[EnvVar, ...], Field(max_length=64)] = ()
    model_source: ModelSource | None = None
    drain: Drain = Drain()

    @field_validator("env")
    @classmethod
    def _names_are_unique(cls, env: tuple[EnvVar, ...]) -> tuple[EnvVar, ...]:
        seen: set[str] = set()
        for i, var in enumerate(env):
            if var.name in seen:
                raise _rule(f"duplicate environment variable {var.name!r}", i, "name")
            seen.add(var.name)
        return env


class SpecError(ValueError):
    """The pool's spec is invalid; ``problems`` lists every field that is wrong."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def read_spec(raw: object) -> PoolSpec:
    """An ASRPool's ``spec`` as a ``PoolSpec``; raises ``SpecError`` listing every problem."""
    try:
        return PoolSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError([_problem(d) for d in e.errors()]) from None


# pydantic's error types → what kubectl users read after the field's path.
_SAYS = {
    "missing": "required",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "{input!r} must match {pattern}",
    "string_type": "must be a string, not {input!r}",
    "int_type": "must be an integer, not {input!r}",
    "float_type": "must be a number, not {input!r}",
    "bool_type": "must be true or false, not {input!r}",
    "literal_error": "{input!r} must be one of {expected}",
    "greater_than_equal": "must be at least {ge:g}",
    "less_than_equal": "must be at most {le:g}",
    "greater_than": "must be greater than {gt:g}",
    "too_long": "must have at most {max_length} items",
    "tuple_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
}


def _problem(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    where = "spec" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in (*error["loc"], *ctx.get("at", ()))
    )
    if error["type"] == "too_long" and ctx.get("field_type") == "Dictionary":
        says = "must have at most {max_length} entries"
    else:
        says = _SAYS.get(error["type"], "{msg}")
    return f"{where}: {says.format(**ctx, input=error['input'], msg=error['msg'])}"
