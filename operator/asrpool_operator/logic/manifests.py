"""A parsed ``Pool`` → the Deployment, Service and PodDisruptionBudget it should have (pure).

``children(pool)`` returns the three manifests the operator server-side-applies, each owned by
the pool (a controller owner reference, so the garbage collector deletes them with it) and
stamped with ``asrpool.dev/spec-hash``: a hash of the manifest itself, so the reconciler can
tell "what we applied last" from "what we want now" with one GET and no field-by-field diff.
The same pool always gives byte-identical manifests: dict order, list order and the hash
depend only on the spec.

Why the pods look as they do:
- GPUs are an extended resource: requests equal limits, and the worker gets ``--device cuda``.
- Memory request = limit (a node under pressure OOM-kills pods that exceed their request
  first); CPU has a request and no limit (throttling only slows the decoder down).
- Readiness on ``/readyz`` (200 once the model is loaded), liveness on ``/healthz``, and a
  startup probe on the liveness path that allows 10 minutes for the first answer: a server
  that downloads a large model before answering anything is not killed for it.
- Draining: a preStop sleep keeps the pod serving while routers see it leave the endpoints,
  then SIGTERM lets the worker finish what it holds; the grace period covers both.
- GPU pools roll one pod at a time without surging (a spare GPU is rarely free, and a surge
  pod would wait for one forever); CPU pools surge one pod and never go below replicas.
- Workers serve routers only: with the operator's ``--worker-token-secret`` our worker mounts
  that Secret and needs its token on ``/v1`` (``asrpool_contract.credentials``); a bridge
  CNI enforces no NetworkPolicy, so the chart's policy alone would not stop a pod calling a worker.
- Locked down: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, no
  service-account token (workers never call the API), no service-link environment variables
  (a Service named ``asrpool`` would otherwise set ``ASRPOOL_PORT=tcp://…`` in the pod, which
  our flags read). Our worker also gets a read-only root filesystem with ``/tmp`` writable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from asrpool_contract.credentials import WORKER_TOKEN_KEY

from .labels import (
    MANAGED_BY,
    MODEL_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    WORKER_CONTAINER,
    child_name,
    labels,
    selector_labels,
)
from .spec import API_VERSION, KIND, WORKER_UID, Pool, PoolRef

TMP_VOLUME = "tmp"
MODEL_VOLUME = "model"
TOKEN_VOLUME = "worker-token"
TOKEN_DIR = "/etc/asrpool/worker-token"
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 60  # 10 minutes to load a model before the kubelet gives up


def owner_reference(ref: PoolRef) -> dict[str, Any]:
    """The pool as the controller of a child: deleted with it, and found from it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def children(pool: Pool) -> list[dict[str, Any]]:
    """Every object the pool should have, hash-stamped, in a fixed order."""
    return [stamp(m) for m in (deployment(pool), service(pool), disruption_budget(pool))]


def stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its own hash in ``asrpool.dev/spec-hash``."""
    annotations = manifest["metadata"].setdefault("annotations", {})
    annotations.pop(SPEC_HASH_ANNOTATION, None)
    annotations[SPEC_HASH_ANNOTATION] = spec_hash(manifest)
    return manifest


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """A stable hash of a manifest, ignoring any hash annotation it already carries."""
    meta = dict(manifest.get("metadata") or {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != SPEC_HASH_ANNOTATION
    }
    meta["annotations"] = annotations
    canonical = json.dumps(
        {**manifest, "metadata": meta}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _metadata(pool: Pool) -> dict[str, Any]:
    return {
        "name": child_name(pool.ref.name),
        "namespace": pool.ref.namespace,
        "labels": labels(pool.ref.name),
        "annotations": {MODEL_ANNOTATION: pool.spec.model},
        "ownerReferences": [owner_reference(pool.ref)],
    }


def worker_args(pool: Pool) -> list[str]:
    """Our worker's command line after ``asrpool``; spec.args come last, so they win."""
    spec = pool.spec
    args = [
        "worker",
        "--host", "0.0.0.0",
        "--port", str(spec.server.port),
        "--model-name", spec.model,
        "--device", "cuda" if spec.resources.gpus > 0 else "cpu",
        # The router gives each pod perPod requests at once; more decodes than that would
        # only queue inside the worker, where realtime pieces could not overtake batch work.
        "--num-workers", str(spec.concurrency.per_pod),
        "--drain-timeout", str(spec.drain.timeout_s),
    ]  # fmt: skip
    if spec.model_source is not None:
        args += ["--model", spec.model_source.model_dir]
    if pool.worker_token_secret:
        args += ["--worker-token-file", f"{TOKEN_DIR}/{WORKER_TOKEN_KEY}"]
    return args + list(spec.args)


def deployment(pool: Pool) -> dict[str, Any]:
    spec = pool.spec
    gpu = spec.resources.gpus > 0
    strategy = {"maxSurge": 0, "maxUnavailable": 1} if gpu else {"maxSurge": 1, "maxUnavailable": 0}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pool),
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(pool.ref.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
            "template": {
                "metadata": {
                    "labels": labels(pool.ref.name),
                    "annotations": {MODEL_ANNOTATION: spec.model},
                },
                "spec": _pod_spec(pool),
            },
        },
    }


def _pod_spec(pool: Pool) -> dict[str, Any]:
    spec = pool.spec
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    uid = spec.server.run_as_user or (WORKER_UID if spec.server.is_asrpool else None)
    if uid is not None:
        pod_security.update(runAsUser=uid, runAsGroup=uid, fsGroup=uid)
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security,
        "terminationGracePeriodSeconds": spec.drain.grace_period_s,
        "containers": [_container(pool)],
        "volumes": _volumes(pool),
    }
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    if spec.resources.node_selector:
        pod["nodeSelector"] = dict(sorted(spec.resources.node_selector.items()))
    if spec.resources.tolerations:
        pod["tolerations"] = [
            {k: v for k, v in (
                ("key", t.key), ("operator", t.operator), ("value", t.value),
                ("effect", t.effect), ("tolerationSeconds", t.toleration_seconds),
            ) if v is not None}
            for t in spec.resources.tolerations
        ]  # fmt: skip
    return pod


def _container(pool: Pool) -> dict[str, Any]:
    spec = pool.spec
    ours = spec.server.is_asrpool
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
    }
    if ours:
        container["command"] = ["asrpool"]
        container["args"] = worker_args(pool)
    elif spec.args:
        container["args"] = list(spec.args)
    container["ports"] = [{"name": "http", "containerPort": spec.server.port, "protocol": "TCP"}]
    env = _env(pool)
    if env:
        container["env"] = env
    container["resources"] = _resources(pool)
    live, ready = spec.server.liveness_path, spec.server.readiness_path
    container["startupProbe"] = _probe(
        live, period=STARTUP_PERIOD_S, timeout=5, failures=STARTUP_FAILURES
    )
    container["livenessProbe"] = _probe(live, period=10, timeout=5, failures=3)
    container["readinessProbe"] = _probe(ready, period=5, timeout=3, failures=2)
    if spec.drain.pre_stop_s > 0:
        # The kubelet's own sleep action: works in images without a shell or `sleep`.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": spec.drain.pre_stop_s}}}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": ours,
        "capabilities": {"drop": ["ALL"]},
    }
    container["volumeMounts"] = _volume_mounts(pool)
    return container


def _env(pool: Pool) -> list[dict[str, Any]]:
    """The operator's variables (a writable HOME and cache under /tmp for our read-only
    image), then the user's; a user variable of the same name replaces ours."""
    base: dict[str, dict[str, Any]] = {}
    if pool.spec.server.is_asrpool:
        base["HOME"] = {"name": "HOME", "value": "/tmp"}
        base["XDG_CACHE_HOME"] = {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"}
    for e in pool.spec.env:
        var: dict[str, Any] = {"name": e.name}
        if e.value is not None:
            var["value"] = e.value
        if e.value_from is not None:
            var["valueFrom"] = _plain(e.value_from)
        base.pop(e.name, None)
        base[e.name] = var
    return list(base.values())


def _resources(pool: Pool) -> dict[str, Any]:
    r = pool.spec.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if r.cpu is not None:
        requests["cpu"] = r.cpu
    if r.memory is not None:
        requests["memory"] = limits["memory"] = r.memory
    if r.gpus > 0:
        requests[r.gpu_resource_name] = limits[r.gpu_resource_name] = str(r.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _probe(path: str, *, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http", "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _token(pool: Pool) -> str | None:
    """The worker token's Secret, for our worker only (another server has its own auth)."""
    return pool.worker_token_secret if pool.spec.server.is_asrpool else None


def _volumes(pool: Pool) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {}}]
    secret = _token(pool)
    if secret:
        volumes.append(
            {
                "name": TOKEN_VOLUME,
                "secret": {
                    "secretName": secret,
                    "items": [{"key": WORKER_TOKEN_KEY, "path": WORKER_TOKEN_KEY}],
                    # Readable by the worker's group (fsGroup) and no one else.
                    "defaultMode": 0o440,
                },
            }
        )
    source = pool.spec.model_source
    if source is None:
        return volumes
    if (claim := source.persistent_volume_claim) is not None:
        volumes.append(
            {
                "name": MODEL_VOLUME,
                "persistentVolumeClaim": {
                    "claimName": claim.claim_name,
                    "readOnly": claim.read_only,
                },
            }
        )
    elif source.host_path is not None:
        volumes.append(
            {"name": MODEL_VOLUME, "hostPath": {"path": source.host_path.path, "type": "Directory"}}
        )
    return volumes


def _volume_mounts(pool: Pool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]
    if _token(pool):
        mounts.append({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True})
    source = pool.spec.model_source
    if source is None or source.baked is not None:
        return mounts
    claim = source.persistent_volume_claim
    mount: dict[str, Any] = {"name": MODEL_VOLUME, "mountPath": source.mount_path}
    mount["readOnly"] = claim.read_only if claim is not None else True
    if claim is not None and claim.sub_path:
        mount["subPath"] = claim.sub_path
    mounts.append(mount)
    return mounts


def service(pool: Pool) -> dict[str, Any]:
    """Headless: the router talks to each pod itself (it picks the pod, not kube-proxy)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(pool),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(pool.ref.name),
            "ports": [
                {
                    "name": "http",
                    "port": pool.spec.server.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
            "publishNotReadyAddresses": False,
        },
    }


def disruption_budget(pool: Pool) -> dict[str, Any]:
    """One pod at a time may be evicted (a node drain never stalls on a one-pod pool), and a
    crash-looping pod may always be evicted, or a broken pool could block every drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(pool),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(pool.ref.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists only (kopf hands out read-only views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def event(ref: PoolRef, type_: str, reason: str, message: str, now: str) -> dict[str, Any]:
    """A core/v1 Event about the pool (what `kubectl describe asrpool` lists)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],  # the API server refuses longer messages
        "source": {"component": MANAGED_BY},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
