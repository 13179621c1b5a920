"""The kubelet of the KWOK nodes for one pool's worker pods: real workers at the pods' addresses.

No kubelet runs here (KWOK only keeps the nodes alive), so ``PodRunner`` does a kubelet's part
for the pods of one ASRPool, polling the API server a few times a second:

- a pod the scheduler bound to a node gets a network namespace of its own
  (``tests/support/netns.py``) and a real worker process in it; its status says Running with
  that address as its IP, and Ready once the worker's ``/readyz`` answers (the model is
  loaded), so the EndpointSlice controller publishes it then, as it would a real pod;
- a pod being deleted gets, as from the kubelet: ``preStopSeconds`` of grace while the
  routers stop sending to it (its endpoint turns terminating at once), then SIGTERM, and the
  worker finishes what it holds before it exits; then the pod is removed (grace 0, as the
  kubelet confirms a stopped pod). The pod's annotations at that moment are kept
  (``deleted``), so a test can see which pods the ReplicaSet chose and at what cost.

Pods that were never bound (Pending for want of a GPU) are left to the scheduler. Every
loop is bounded by the runner's lifetime; on exit every worker stops and every namespace goes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.k8s.controlplane import ControlPlane
from tests.support.netns import pod_host
from tests.support.procs import LEAN_WORKER, ServerProcess

WORKER_PORT = 9000


@dataclass
class _Pod:
    ip: str
    proc: ServerProcess
    stack: contextlib.ExitStack
    ready: bool = False
    deleting_since: float | None = None
    terminated: bool = False


@dataclass
class Deleted:
    """A pod the runner stopped: when, and its annotations then."""

    at: float
    annotations: dict[str, str] = field(default_factory=dict)


class PodRunner:
    def __init__(
        self, cp: ControlPlane, namespace: str, pool: str, workdir: Path, pre_stop_s: float = 1.0
    ) -> None:
        self._cp = cp
        self._namespace = namespace
        self._pool = pool
        self._workdir = workdir
        self._pre_stop_s = pre_stop_s
        self._pods: dict[str, _Pod] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pod-runner", daemon=True)
        self.deleted: dict[str, Deleted] = {}
        self.started: list[str] = []
        self.errors: list[str] = []

    def __enter__(self) -> PodRunner:
        self._http = self._cp.client()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for name in list(self._pods):
            self._forget(name)
        self._http.close()

    def workers(self) -> dict[str, ServerProcess]:
        """The running workers by pod name."""
        return {name: pod.proc for name, pod in self._pods.items() if not pod.terminated}

    # --- the loop

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self._sync()
            except Exception as e:  # keep running; the test reads the errors
                self.errors.append(repr(e))

    def _sync(self) -> None:
        path = f"/api/v1/namespaces/{self._namespace}/pods"
        answer = self._http.get(path, params={"labelSelector": f"asrpool.dev/pool={self._pool}"})
        answer.raise_for_status()
        seen = set()
        for pod in answer.json()["items"]:
            meta = pod["metadata"]
            name = meta["name"]
            seen.add(name)
            if not pod["spec"].get("nodeName"):
                continue  # Pending: the scheduler's business
            running = self._pods.get(name)
            if meta.get("deletionTimestamp"):
                self._stop_pod(name, running, meta)
            elif running is None:
                self._start(name, pod)
            elif not running.ready and _answers(running.proc):
                running.ready = True
                self._patch_status(name, running.ip, ready=True)
        for name in set(self._pods) - seen:
            self._forget(name)

    def _start(self, name: str, pod: dict[str, Any]) -> None:
        stack = contextlib.ExitStack()
        host = stack.enter_context(pod_host())
        proc = ServerProcess(
            ["worker", "--host", host.ip, "--port", str(WORKER_PORT), "--drain-timeout", "30",
             *LEAN_WORKER],
            WORKER_PORT,
            self._workdir / f"{name}.log",
            prefix=host.exec_prefix(),
            host=host.ip,
        )  # fmt: skip
        stack.callback(proc.stop)
        self._pods[name] = _Pod(host.ip, proc, stack)
        self.started.append(name)
        self._patch_status(name, host.ip, ready=False)

    def _stop_pod(self, name: str, running: _Pod | None, meta: dict[str, Any]) -> None:
        if name not in self.deleted:
            self.deleted[name] = Deleted(time.monotonic(), dict(meta.get("annotations") or {}))
        if running is None:
            self._remove(name)  # never started: nothing to stop
            return
        now = time.monotonic()
        if running.deleting_since is None:
            running.deleting_since = now
        if not running.terminated and now - running.deleting_since >= self._pre_stop_s:
            running.proc.proc.terminate()  # SIGTERM: the worker drains, then exits
            running.terminated = True
        if running.terminated and running.proc.proc.poll() is not None:
            self._remove(name)
            self._forget(name)

    def _remove(self, name: str) -> None:
        answer = self._http.request(
            "DELETE",
            f"/api/v1/namespaces/{self._namespace}/pods/{name}",
            json={"gracePeriodSeconds": 0},
        )
        if answer.status_code not in (200, 202, 404):
            answer.raise_for_status()

    def _forget(self, name: str) -> None:
        pod = self._pods.pop(name, None)
        if pod is not None:
            pod.stack.close()

    def _patch_status(self, name: str, ip: str, *, ready: bool) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        flag = "True" if ready else "False"
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {"name": "worker", "ready": ready, "started": True, "restartCount": 0,
                 "image": "worker", "imageID": "", "state": {"running": {"startedAt": now}}}
            ],
        }  # fmt: skip
        answer = self._http.patch(
            f"/api/v1/namespaces/{self._namespace}/pods/{name}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if answer.status_code != 404:  # deleted meanwhile: nothing to report on
            answer.raise_for_status()


def _answers(proc: ServerProcess) -> bool:
    if proc.proc.poll() is not None:
        return False
    try:
        return httpx.get(f"{proc.url}/readyz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False
