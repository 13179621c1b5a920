"""An ASRPool object → a validated, fully defaulted ``Pool`` (pure).

``parse_pool(obj, defaults)`` is the only way in. It fills every field with the default the
CRD declares (``crds/asrpool.yaml``; a unit test compares the two), so an object the API server
did not default — one read from a file, or stored before a field existed — means the same
thing, and it checks the CRD's rules again, so a pool created before a rule existed cannot
reach the manifests. Problems come back together in one ``SpecError``, each naming its field
the way ``kubectl`` does (``spec.concurrency.perPod: must be at least 1``).

Called by the reconciler before it builds manifests. It is also what the router's Kubernetes
discovery can use to read a pool's concurrency, retry and realtime settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API_GROUP = "asrpool.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ASRPool"
PLURAL = "asrpools"

SERVER_ASRPOOL = "asrpool"
SERVER_OPENAI = "openai-compatible"
# The worker image runs as this user (worker/Dockerfile); openai-compatible images use their own.
WORKER_UID = 10001

MAX_POOL_NAME = 56  # the Service is NAME-worker: a DNS label of at most 63 characters
_POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
# resource.Quantity's grammar (what kube-apiserver accepts for cpu and memory).
_QUANTITY = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_ABSOLUTE = re.compile("^/")
_NUMBER = re.compile(r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


class SpecError(ValueError):
    """The pool's spec is invalid; ``problems`` lists every field that is wrong."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class OperatorDefaults:
    """What the operator fills in that the CRD cannot: the worker image of this release, and
    the Secret holding the token its routers show workers (None: workers take any caller)."""

    worker_image: str = "ghcr.io/asrpool/worker:0.1.0"
    worker_token_secret: str | None = None


@dataclass(frozen=True)
class PoolRef:
    """Which ASRPool object: what owner references and events point at."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class Server:
    type: str = SERVER_ASRPOOL
    port: int = 9000
    readiness_path: str = "/readyz"
    liveness_path: str = "/healthz"
    run_as_user: int | None = None

    @property
    def is_asrpool(self) -> bool:
        return self.type == SERVER_ASRPOOL


@dataclass(frozen=True)
class Autoscaling:
    """spec.autoscaling: how the operator sets spec.replicas (``logic.autoscale`` reads it)."""

    max_replicas: int
    min_replicas: int = 1
    # False: replicas are someone else's (kubectl scale, an HPA or KEDA); the operator only
    # reports.
    enabled: bool = True
    target_in_flight_per_pod: float | None = None  # None: concurrency.perPod
    target_queue_depth: int = 0
    stable_window_s: int = 60
    panic_window_s: int = 6  # 0: no panic mode
    max_scale_up_rate: float = 2.0  # at most this many times the ready pods
    scale_down_stabilization_s: int = 300
    scale_to_zero_delay_s: int = 900


@dataclass(frozen=True)
class Concurrency:
    per_pod: int = 2
    max_queue: int = 64
    queue_timeout_s: float = 120.0
    cold_start_timeout_s: float = 600.0


@dataclass(frozen=True)
class Ejection:
    consecutive_failures: int = 3
    base_s: float = 5.0
    max_s: float = 120.0
    max_percent: int = 50


@dataclass(frozen=True)
class Retry:
    max_attempts: int = 0  # 0: no cap (every pod failed the request, or its deadline passed)
    request_timeout_s: float = 300.0
    ejection: Ejection = field(default_factory=Ejection)


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


@dataclass(frozen=True)
class Resources:
    gpus: int = 0
    gpu_resource_name: str = "nvidia.com/gpu"
    memory: str | None = None
    cpu: str | None = None
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()


@dataclass(frozen=True)
class Realtime:
    silence_duration_ms: int = 500
    max_chunk_ms: int = 12_000
    partial_interval_ms: int = 700


@dataclass(frozen=True)
class ModelSource:
    """Exactly one of baked (a path in the image), a PVC or a host directory."""

    kind: str  # "baked" | "persistentVolumeClaim" | "hostPath"
    mount_path: str = "/models"
    path: str | None = None  # baked: in the image; hostPath: on the node
    claim_name: str | None = None
    sub_path: str | None = None
    read_only: bool = True

    @property
    def model_dir(self) -> str:
        """The model's directory inside the container."""
        return self.path if self.kind == "baked" and self.path else self.mount_path


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    value_from: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Drain:
    pre_stop_s: int = 5
    timeout_s: int = 60

    @property
    def grace_period_s(self) -> int:
        # The kubelet's clock starts before preStop; 5 s more lets the process exit on its own.
        return self.pre_stop_s + self.timeout_s + 5


@dataclass(frozen=True)
class PoolSpec:
    model: str
    image: str
    aliases: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    server: Server = field(default_factory=Server)
    replicas: int = 1
    autoscaling: Autoscaling | None = None
    concurrency: Concurrency = field(default_factory=Concurrency)
    retry: Retry = field(default_factory=Retry)
    resources: Resources = field(default_factory=Resources)
    realtime: Realtime = field(default_factory=Realtime)
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    model_source: ModelSource | None = None
    drain: Drain = field(default_factory=Drain)
    # Not in the CRD: the operator's --worker-token-secret (OperatorDefaults).
    worker_token_secret: str | None = None


@dataclass(frozen=True)
class Pool:
    ref: PoolRef
    generation: int
    spec: PoolSpec


def parse_pool(obj: Mapping[str, Any], defaults: OperatorDefaults = OperatorDefaults()) -> Pool:
    """The ASRPool object as a ``Pool``; raises ``SpecError`` listing every problem."""
    problems: list[str] = []
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    if len(name) > MAX_POOL_NAME or not _POOL_NAME.match(name):
        problems.append(
            f"metadata.name: {name!r} must be at most {MAX_POOL_NAME} characters of lowercase "
            "letters, digits and '-', starting with a letter (its Service is NAME-worker)"
        )
    ref = PoolRef(
        name=name, namespace=str(meta.get("namespace") or ""), uid=str(meta.get("uid") or "")
    )
    raw_spec = obj.get("spec")
    if not isinstance(raw_spec, Mapping):
        raise SpecError([*problems, "spec: required"])
    spec = _parse_spec(_Fields(raw_spec, "spec", problems), defaults)
    if problems or spec is None:
        raise SpecError(problems)
    return Pool(ref=ref, generation=int(meta.get("generation") or 0), spec=spec)


def _parse_spec(f: _Fields, defaults: OperatorDefaults) -> PoolSpec | None:
    model = f.string("model", required=True, pattern=_MODEL, max_len=128)
    aliases = tuple(f.string_list("aliases", max_items=16, max_len=128))
    spec = PoolSpec(
        model=model or "",
        image=f.string("image", max_len=512) or defaults.worker_image,
        aliases=aliases,
        image_pull_policy=f.choice("imagePullPolicy", _PULL_POLICIES, "IfNotPresent"),
        image_pull_secrets=tuple(
            s.string("name", required=True) or "" for s in f.objects("imagePullSecrets", 16)
        ),
        server=_server(f.child("server")),
        replicas=f.integer("replicas", 1, minimum=0),
        autoscaling=_autoscaling(f.child("autoscaling")) if f.has("autoscaling") else None,
        concurrency=_concurrency(f.child("concurrency")),
        retry=_retry(f.child("retry")),
        resources=_resources(f.child("resources")),
        realtime=_realtime(f.child("realtime")),
        args=tuple(f.string_list("args", max_items=64, max_len=1024)),
        env=_env(f),
        model_source=_model_source(f.child("modelSource")) if f.has("modelSource") else None,
        drain=_drain(f.child("drain")),
        worker_token_secret=defaults.worker_token_secret,
    )
    return spec if model else None


def _server(f: _Fields) -> Server:
    return Server(
        type=f.choice("type", (SERVER_ASRPOOL, SERVER_OPENAI), SERVER_ASRPOOL),
        port=f.integer("port", 9000, minimum=1, maximum=65535),
        readiness_path=f.string("readinessPath", pattern=_ABSOLUTE) or "/readyz",
        liveness_path=f.string("livenessPath", pattern=_ABSOLUTE) or "/healthz",
        run_as_user=f.optional_integer("runAsUser", minimum=1),
    )


def _autoscaling(f: _Fields) -> Autoscaling:
    enabled = f.boolean("enabled", True)
    a = Autoscaling(
        enabled=enabled,
        min_replicas=f.integer("minReplicas", 1, minimum=0, maximum=1000),
        # Only the operator's own rule needs a ceiling; an external scaler has its own.
        max_replicas=f.integer("maxReplicas", 1, minimum=1, maximum=1000, required=enabled),
        target_in_flight_per_pod=f.optional_number("targetInFlightPerPod", exclusive_minimum=0),
        target_queue_depth=f.integer("targetQueueDepth", 0, minimum=0),
        stable_window_s=f.integer("stableWindowSeconds", 60, minimum=6, maximum=3600),
        panic_window_s=f.integer("panicWindowSeconds", 6, minimum=0, maximum=3600),
        max_scale_up_rate=f.number("maxScaleUpRate", 2.0, exclusive_minimum=1),
        scale_down_stabilization_s=f.integer(
            "scaleDownStabilizationSeconds", 300, minimum=0, maximum=3600
        ),
        scale_to_zero_delay_s=f.integer("scaleToZeroDelaySeconds", 900, minimum=0, maximum=86400),
    )
    if f.has("maxReplicas") and a.min_replicas > a.max_replicas:
        f.problem("minReplicas", "autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
    if a.panic_window_s > a.stable_window_s:
        f.problem(
            "panicWindowSeconds",
            "autoscaling.panicWindowSeconds must not exceed autoscaling.stableWindowSeconds",
        )
    return a


def _concurrency(f: _Fields) -> Concurrency:
    per_pod = f.integer("perPod", 2, maximum=64)
    if per_pod < 1:
        f.problem(
            "perPod", "concurrency.perPod must be at least 1: a pod with no slots never serves"
        )
    return Concurrency(
        per_pod=per_pod,
        max_queue=f.integer("maxQueue", 64, minimum=0),
        queue_timeout_s=f.number("queueTimeoutSeconds", 120.0, exclusive_minimum=0),
        cold_start_timeout_s=f.number("coldStartTimeoutSeconds", 600.0, exclusive_minimum=0),
    )


def _retry(f: _Fields) -> Retry:
    # backoffBaseSeconds / backoffCapSeconds are deprecated and ignored: checked only for type.
    f.number("backoffBaseSeconds", 0.0, minimum=0)
    f.number("backoffCapSeconds", 0.0, minimum=0)
    return Retry(
        max_attempts=f.integer("maxAttempts", 0, minimum=0, maximum=100),
        request_timeout_s=f.number("requestTimeoutSeconds", 300.0, exclusive_minimum=0),
        ejection=_ejection(f.child("ejection")),
    )


def _ejection(f: _Fields) -> Ejection:
    e = Ejection(
        consecutive_failures=f.integer("consecutiveFailures", 3, minimum=1, maximum=100),
        base_s=f.number("baseEjectionSeconds", 5.0, minimum=0),
        max_s=f.number("maxEjectionSeconds", 120.0, minimum=0),
        max_percent=f.integer("maxEjectionPercent", 50, minimum=0, maximum=100),
    )
    if e.base_s > e.max_s:
        f.problem(
            "",
            "retry.ejection.baseEjectionSeconds must not exceed retry.ejection.maxEjectionSeconds",
        )
    return e


def _resources(f: _Fields) -> Resources:
    node_selector = f.string_map("nodeSelector", max_items=32)
    return Resources(
        gpus=f.integer("gpus", 0, minimum=0, maximum=16),
        gpu_resource_name=f.string("gpuResourceName", max_len=128) or "nvidia.com/gpu",
        memory=f.quantity("memory"),
        cpu=f.quantity("cpu"),
        node_selector=tuple(sorted(node_selector.items())),
        tolerations=tuple(
            Toleration(
                key=t.string("key"),
                operator=t.optional_choice("operator", _TOLERATION_OPERATORS),
                value=t.string("value"),
                effect=t.optional_choice("effect", _TAINT_EFFECTS),
                toleration_seconds=t.optional_integer("tolerationSeconds"),
            )
            for t in f.objects("tolerations", 32)
        ),
    )


def _realtime(f: _Fields) -> Realtime:
    r = Realtime(
        silence_duration_ms=f.integer("silenceDurationMs", 500, minimum=30, maximum=10_000),
        max_chunk_ms=f.integer("maxChunkMs", 12_000, minimum=2_000, maximum=30_000),
        partial_interval_ms=f.integer("partialIntervalMs", 700, minimum=100, maximum=10_000),
    )
    if r.silence_duration_ms >= r.max_chunk_ms:
        f.problem("", "realtime.silenceDurationMs must be shorter than realtime.maxChunkMs")
    return r


def _env(f: _Fields) -> tuple[EnvVar, ...]:
    env: list[EnvVar] = []
    seen: set[str] = set()
    for e in f.objects("env", 64):
        name = e.string("name", required=True, max_len=256) or ""
        if name in seen:
            e.problem("name", f"duplicate environment variable {name!r}")
        seen.add(name)
        value_from = e.raw("valueFrom")
        if value_from is not None and not isinstance(value_from, Mapping):
            e.problem("valueFrom", "must be an object")
            value_from = None
        env.append(EnvVar(name=name, value=e.string("value"), value_from=value_from))
    return tuple(env)


def _model_source(f: _Fields) -> ModelSource | None:
    members = [k for k in ("baked", "persistentVolumeClaim", "hostPath") if f.has(k)]
    if len(members) != 1:
        f.problem("", "modelSource needs exactly one of baked, persistentVolumeClaim, hostPath")
        return None
    mount_path = f.string("mountPath", pattern=_ABSOLUTE) or "/models"
    kind = members[0]
    m = f.child(kind)
    if kind == "persistentVolumeClaim":
        return ModelSource(
            kind=kind,
            mount_path=mount_path,
            claim_name=m.string("claimName", required=True, max_len=253),
            sub_path=m.string("subPath") or None,
            read_only=m.boolean("readOnly", True),
        )
    path = m.string("path", required=True, pattern=_ABSOLUTE)
    return ModelSource(kind=kind, mount_path=mount_path, path=path)


def _drain(f: _Fields) -> Drain:
    return Drain(
        pre_stop_s=f.integer("preStopSeconds", 5, minimum=0, maximum=120),
        timeout_s=f.integer("timeoutSeconds", 60, minimum=1, maximum=3600),
    )


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


class _Fields:
    """One object of the spec, read field by field; problems are collected, never raised."""

    def __init__(self, data: object, path: str, problems: list[str]) -> None:
        if data is not None and not isinstance(data, Mapping):
            problems.append(f"{path}: must be an object")
            data = None
        self._data: Mapping[str, Any] = data or {}
        self._path = path
        self._problems = problems

    def problem(self, key: str, message: str) -> None:
        where = f"{self._path}.{key}" if key else self._path
        self._problems.append(f"{where}: {message}")

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self._data.get(key)

    def child(self, key: str) -> _Fields:
        return _Fields(self._data.get(key), f"{self._path}.{key}", self._problems)

    def objects(self, key: str, max_items: int) -> list[_Fields]:
        items = self._list(key, max_items)
        return [_Fields(v, f"{self._path}.{key}[{i}]", self._problems) for i, v in enumerate(items)]

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        max_len: int = 256,
    ) -> str | None:
        value = self._data.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        if not isinstance(value, str):
            self.problem(key, f"must be a string, not {value!r}")
            return None
        if required and not value:
            self.problem(key, "must not be empty")
        elif len(value) > max_len:
            self.problem(key, f"must be at most {max_len} characters")
        elif pattern is not None and value and not pattern.match(value):
            self.problem(key, f"{value!r} must match {pattern.pattern}")
        return value

    def string_list(self, key: str, *, max_items: int, max_len: int) -> list[str]:
        out = []
        for i, v in enumerate(self._list(key, max_items)):
            if not isinstance(v, str) or len(v) > max_len:
                self.problem(f"{key}[{i}]", f"must be a string of at most {max_len} characters")
            else:
                out.append(v)
        return out

    def string_map(self, key: str, *, max_items: int) -> dict[str, str]:
        value = self._data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.problem(key, "must map strings to strings")
            return {}
        if len(value) > max_items:
            self.problem(key, f"must have at most {max_items} entries")
        return dict(value)

    def choice(self, key: str, allowed: Sequence[str], default: str) -> str:
        return self.optional_choice(key, allowed) or default

    def optional_choice(self, key: str, allowed: Sequence[str]) -> str | None:
        value = self._data.get(key)
        if value is not None and value not in allowed:
            self.problem(key, f"{value!r} must be one of {', '.join(repr(a) for a in allowed)}")
            return None
        return value

    def integer(
        self,
        key: str,
        default: int,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        required: bool = False,
    ) -> int:
        if required and self._data.get(key) is None:
            self.problem(key, "required")
        value = self.optional_integer(key, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def optional_integer(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            self.problem(key, f"must be an integer, not {value!r}")
            return None
        return int(self._bounded(key, value, minimum, maximum))

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        exclusive_minimum: float | None = None,
    ) -> float:
        value = self.optional_number(key, minimum=minimum, exclusive_minimum=exclusive_minimum)
        return default if value is None else value

    def optional_number(
        self, key: str, *, minimum: float | None = None, exclusive_minimum: float | None = None
    ) -> float | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number, not {value!r}")
            return None
        if exclusive_minimum is not None and value <= exclusive_minimum:
            self.problem(key, f"must be greater than {exclusive_minimum:g}")
        return float(self._bounded(key, value, minimum, None))

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, not {value!r}")
            return default
        return value

    def quantity(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None:
            return None
        if not is_quantity(value):
            self.problem(key, f"{value!r} must be a positive quantity such as 8Gi, 2 or 500m")
            return None
        return str(value)

    def _list(self, key: str, max_items: int) -> list[Any]:
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list")
            return []
        if len(value) > max_items:
            self.problem(key, f"must have at most {max_items} items")
        return value

    def _bounded(
        self, key: str, value: float, minimum: float | None, maximum: float | None
    ) -> float:
        if minimum is not None and value < minimum:
            self.problem(key, f"must be at least {minimum:g}")
        if maximum is not None and value > maximum:
            self.problem(key, f"must be at most {maximum:g}")
        return value
