"""What the operator observed → the pool's ``status``, and the Events worth telling (pure).

``pool_status(observation, previous, now)`` builds the whole status: counts from the worker
Deployment, ``selector`` for the scale subresource, ``queueDepth``/``inFlight`` from the
routers' metrics when known, and three conditions:

- Ready: some worker pod passes its readiness probe, so the pool serves.
- Degraded: pods fail in a way a person must fix. ``diagnose`` reads the pods: OOMKilled (the
  container's last termination, while it restarts or within the last ten minutes),
  CrashLoopBackOff, ImagePullBackOff (ErrImagePull too: the kubelet alternates the two, and a
  reason that flips on every retry would flood the Events), bad image name or container
  config, InsufficientGPU (pods Pending because no node has a free GPU of the pool's
  resource: the message counts them), Unschedulable (any other reason the scheduler gives).
  Each comes with what to do. Also InvalidSpec (the spec fails the operator's checks) and
  NameConflict (a child's name is taken by an object no pool controls).
- Scaling: pods are being created, removed or replaced.
- Autoscaling (pools with spec.autoscaling only): whether the operator sets spec.replicas and
  what holds it back (``autoscale_report``), with ``status.autoscaling`` (panic mode, the
  latest change and why). Until the autoscaler has reported (just after a restart) both keep
  what the status said.

A condition's ``lastTransitionTime`` moves only when its status changes, so the same world
gives the same status and the reconciler writes nothing (``status_patch`` returns None).
``status_events`` compares the old and new conditions: a Warning when the pool becomes
degraded or the reason changes, a Normal when it recovers or becomes ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asrpool_contract.pool_spec import Resources

from .autoscale import PoolLoad
from .autoscale_report import AUTOSCALING, AutoscalerReport
from .capacity import waits_for_gpu
from .labels import selector_string

READY, DEGRADED, SCALING = "Ready", "Degraded", "Scaling"
HEALTHY = "Healthy"
_GPU = Resources().gpu_resource_name  # spec.resources.gpuResourceName's default
OOM_WINDOW = timedelta(minutes=10)

# Most specific first: a pod that was OOMKilled and now waits in CrashLoopBackOff is OOMKilled.
_PRIORITY = (
    "InvalidSpec",
    "NameConflict",
    "OOMKilled",
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "InsufficientGPU",
    "Unschedulable",
)
_WAITING = {
    "CrashLoopBackOff": "CrashLoopBackOff",
    "ImagePullBackOff": "ImagePullBackOff",
    "ErrImagePull": "ImagePullBackOff",
    "InvalidImageName": "InvalidImageName",
    "CreateContainerConfigError": "CreateContainerConfigError",
    "CreateContainerError": "CreateContainerError",
    "RunContainerError": "RunContainerError",
}
_HINTS = {
    "OOMKilled": (
        "the worker ran out of memory: raise spec.resources.memory, lower "
        "spec.concurrency.perPod, or give the worker a --memory-budget-mb in spec.args"
    ),
    "CrashLoopBackOff": "the worker keeps exiting: see `kubectl logs {pod} --previous`",
    "ImagePullBackOff": "the image cannot be pulled: check spec.image and spec.imagePullSecrets",
    "InvalidImageName": "spec.image is not a valid image reference",
    "CreateContainerConfigError": "check the Secrets and ConfigMaps that spec.env refers to",
    "CreateContainerError": "the container runtime could not create the container",
    "RunContainerError": "the container runtime could not start the container",
    "InsufficientGPU": (
        "they are not counted as capacity and the autoscaler adds no more: add nodes with "
        "free {gpu} (a cluster autoscaler reacts to these pods), or lower "
        "spec.resources.gpus or the replicas"
    ),
    "Unschedulable": (
        "no node fits a worker pod: add nodes with free {gpu}, or lower spec.resources or "
        "spec.replicas, or fix spec.resources.nodeSelector and tolerations"
    ),
}


@dataclass(frozen=True)
class Diagnosis:
    """Why the pool is degraded: a reason word and a message that says what to do."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    """Everything the reconciler saw for one pool."""

    generation: int
    desired_replicas: int
    deployment: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    load: PoolLoad | None = None
    problem: Diagnosis | None = None  # InvalidSpec or NameConflict: found before the pods
    gpu_resource_name: str = _GPU
    autoscaled: bool = False  # the spec has autoscaling: status reports on the autoscaler
    autoscaler: AutoscalerReport | None = None  # None: not reported yet (keep the previous)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the pool."""

    type: str  # Normal | Warning
    reason: str
    message: str


def pool_status(
    obs: Observation, pool_name: str, previous: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """The pool's whole status; ``previous`` is the status the API server has now."""
    dep_status = (obs.deployment or {}).get("status") or {}
    replicas = int(dep_status.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    status: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "selector": selector_string(pool_name),
    }
    if obs.load is not None:
        status["queueDepth"] = round(obs.load.queue_depth)
        status["inFlight"] = round(obs.load.in_flight)
    diagnosis = obs.problem or diagnose(obs.pods, now, obs.gpu_resource_name)
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    status["conditions"] = [
        _condition(old.get(READY), READY, *_ready(obs, ready, diagnosis), obs.generation, now),
        _condition(old.get(DEGRADED), DEGRADED, *_degraded(diagnosis), obs.generation, now),
        _condition(old.get(SCALING), SCALING, *_scaling(obs, dep_status), obs.generation, now),
    ]
    if obs.autoscaled:
        _autoscaling(status, obs.autoscaler, previous, old.get(AUTOSCALING), obs.generation, now)
    return status


def _autoscaling(
    status: dict[str, Any],
    report: AutoscalerReport | None,
    previous: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    generation: int,
    now: datetime,
) -> None:
    """The Autoscaling condition and ``status.autoscaling`` from the autoscaler's report."""
    before = previous.get("autoscaling")
    if report is None:  # not reported since the operator started: say what was said
        if isinstance(before, Mapping):
            status["autoscaling"] = dict(before)
        if old is not None:
            status["conditions"].append(dict(old))
        return
    section: dict[str, Any] = {"mode": "Panic" if report.panic else "Stable"}
    if report.last_scale is not None:
        last = report.last_scale
        section["lastScale"] = {"time": last.time, "reason": last.reason, "message": last.message}
    elif isinstance(before, Mapping) and isinstance(before.get("lastScale"), Mapping):
        section["lastScale"] = dict(before["lastScale"])
    status["autoscaling"] = section
    status["conditions"].append(
        _condition(old, AUTOSCALING, report.active, report.reason, report.message, generation, now)
    )


def _ready(obs: Observation, ready: int, diagnosis: Diagnosis | None) -> tuple[bool, str, str]:
    desired = obs.desired_replicas
    if obs.problem is not None:
        return False, obs.problem.reason, obs.problem.message
    if desired == 0:
        return False, "ScaledToZero", "spec.replicas is 0: no worker pod serves"
    counted = f"{ready} of {desired} worker pods ready"
    if ready > 0:
        return True, "Serving", counted
    if diagnosis is not None:
        return False, "NoReplicasReady", f"{counted}; degraded: {diagnosis.reason}"
    return False, "NoReplicasReady", f"{counted} (loading the model, or starting)"


def _degraded(diagnosis: Diagnosis | None) -> tuple[bool, str, str]:
    if diagnosis is None:
        return False, HEALTHY, "no worker pod is failing"
    return True, diagnosis.reason, diagnosis.message


def _scaling(obs: Observation, dep_status: Mapping[str, Any]) -> tuple[bool, str, str]:
    if obs.problem is not None:
        return False, obs.problem.reason, "nothing is changed until the problem is fixed"
    desired = obs.desired_replicas
    if obs.deployment is None:
        return True, "Creating", f"creating the worker Deployment for {desired} pods"
    replicas = int(dep_status.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    updated = int(dep_status.get("updatedReplicas") or 0)
    generation = int((obs.deployment.get("metadata") or {}).get("generation") or 0)
    seen = int(dep_status.get("observedGeneration") or 0)
    if seen < generation:
        return True, "Progressing", "the Deployment controller has not seen the change yet"
    if replicas > desired:
        return True, "ScalingDown", f"{replicas} worker pods, {desired} wanted"
    if updated < min(desired, replicas):
        return True, "RollingUpdate", f"{updated} of {desired} worker pods run the current spec"
    if replicas < desired or ready < desired:
        return True, "ScalingUp", f"{ready} of {desired} worker pods ready"
    return False, "Stable", f"{ready} of {desired} worker pods ready"


def _condition(
    old: Mapping[str, Any] | None,
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    value = "True" if ok else "False"
    since = old.get("lastTransitionTime") if old and old.get("status") == value else None
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or format_time(now),
        "observedGeneration": generation,
    }


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with seconds, as the API server writes times."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def diagnose(pods: Sequence[Mapping[str, Any]], now: datetime, gpu: str = _GPU) -> Diagnosis | None:
    """The most specific failure among the live pods, or None when none is failing."""
    found: dict[str, tuple[str, str]] = {}  # reason → (pod, detail) of the first pod by name
    failing: dict[str, set[str]] = {}
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", ""))):
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        name = str(meta.get("name", ""))
        for reason, detail in _pod_problems(status, now):
            if reason == "Unschedulable" and waits_for_gpu(pod, gpu):
                reason = "InsufficientGPU"
            found.setdefault(reason, (name, detail))
            failing.setdefault(reason, set()).add(name)
    for reason in _PRIORITY:
        if reason in found:
            first, detail = found[reason]
            count = len(failing[reason])
            who = f"pod {first}" if count == 1 else f"{count} pods (first: {first})"
            if reason == "InsufficientGPU":  # say how many wait: it is the point
                waits = f"{count} pod waits" if count == 1 else f"{count} pods wait"
                who = f"{waits} for {gpu} (first: {first})"
            hint = _HINTS[reason].format(pod=first, gpu=gpu)
            return Diagnosis(reason, f"{who}: {detail}; {hint}")
    return None


def _pod_problems(status: Mapping[str, Any], now: datetime) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for c in status.get("conditions") or []:
        if (
            c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ):
            problems.append(("Unschedulable", str(c.get("message") or "unschedulable").strip()))
    for cs in status.get("containerStatuses") or []:
        container = cs.get("name", "?")
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        terminated = state.get("terminated") or {}
        last_terminated = last.get("terminated") or {}
        oom_now = terminated.get("reason") == "OOMKilled"
        oom_before = last_terminated.get("reason") == "OOMKilled" and _recent_or_waiting(
            last_terminated, state, now
        )
        if oom_now or oom_before:
            problems.append(("OOMKilled", f"container {container} was OOMKilled"))
        waiting = state.get("waiting") or {}
        reason = _WAITING.get(str(waiting.get("reason")))
        if reason is not None:
            said = str(waiting.get("message") or "").strip()
            detail = f"container {container} is in {waiting.get('reason')}"
            problems.append((reason, f"{detail} ({said})" if said else detail))
    return problems


def _recent_or_waiting(
    terminated: Mapping[str, Any], state: Mapping[str, Any], now: datetime
) -> bool:
    if state.get("waiting"):
        return True
    finished = parse_time(terminated.get("finishedAt"))
    return finished is None or now - finished <= OOM_WINDOW


def status_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch turning ``previous`` into ``new`` (None when they are equal): keys that
    ``new`` drops are set to null, or a merge patch would keep them."""
    if _normalized(previous) == _normalized(new):
        return None
    patch: dict[str, Any] = dict(new)
    for key in previous:
        if key not in new:
            patch[key] = None
    return patch


def _normalized(status: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    out["conditions"] = sorted(out.get("conditions") or [], key=lambda c: str(c.get("type")))
    return out


def status_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """The Events that the step from ``previous`` to ``new`` deserves."""
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    cur = {c.get("type"): c for c in new.get("conditions") or []}
    events: list[Event] = []
    was, now = old.get(DEGRADED) or {}, cur.get(DEGRADED) or {}
    if now.get("status") == "True" and (
        was.get("status") != "True" or was.get("reason") != now.get("reason")
    ):
        events.append(Event("Warning", str(now.get("reason")), str(now.get("message"))))
    elif now.get("status") == "False" and was.get("status") == "True":
        events.append(Event("Normal", "Recovered", "no worker pod is failing any more"))
    was, now = old.get(READY) or {}, cur.get(READY) or {}
    if now.get("status") == "True" and was.get("status") != "True":
        events.append(Event("Normal", "Ready", str(now.get("message"))))
    elif (
        now.get("status") == "False"
        and was.get("status") == "True"
        and now.get("reason") == "NoReplicasReady"
    ):
        events.append(Event("Warning", "NotReady", str(now.get("message"))))
    events += _autoscaling_events(old, cur)
    return events


def _autoscaling_events(
    old: Mapping[Any, Mapping[str, Any]], cur: Mapping[Any, Mapping[str, Any]]
) -> list[Event]:
    """A Warning when the autoscaler becomes held back for a new reason (not one the Degraded
    Warning already told), a Normal when it follows the load again."""
    was, now = old.get(AUTOSCALING) or {}, cur.get(AUTOSCALING) or {}
    reason = now.get("reason")
    if not now or reason == was.get("reason"):
        return []
    if reason == "Active":
        if not was:
            return []  # a new pool's autoscaler starting: nothing to tell
        return [Event("Normal", "AutoscalingActive", str(now.get("message")))]
    if reason == (cur.get(DEGRADED) or {}).get("reason"):
        return []
    return [Event("Warning", str(reason), str(now.get("message")))]
