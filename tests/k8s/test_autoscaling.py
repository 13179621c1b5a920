"""Autoscaling end to end: the operator, a real router and real workers on fake GPU nodes.

Two KWOK nodes with 2 ``nvidia.com/gpu`` each (``kwok.py``); the real kube-scheduler places
the pool's pods on them; ``pod_runner.py`` runs a real worker (bundled tiny.en) in a network
namespace at each bound pod's address and reports it Ready once it serves; the real router
(``asrpool router --kubernetes``) finds the pods through their EndpointSlices, and the
operator reads its ``/metrics`` through a Pod object that points at it (no router pod can
run here). One pool goes through a whole life, every request answered 200:

1. at zero, a burst waits in the router (cold start) while the operator brings pods up, from
   zero to maxReplicas as they turn ready;
2. the burst ends: after the scale-down delay the pool halves, then the ReplicaSet removes
   the pods the operator marked cheapest, while a trickle keeps one busy; to zero after the
   longer delay;
3. one GPU taken by another pod, maxReplicas above what fits: a burst finds a pod Pending for
   want of a GPU; status says InsufficientGPU with the count; growth stops and nothing is
   deleted and recreated.

The windows and delays are seconds, not minutes (the CRD's knobs); the loads are bounded in
clients, requests and time.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.k8s.controlplane import ControlPlane
from tests.k8s.kwok import GPU, TOLERATION, gpu_nodes
from tests.k8s.pod_runner import PodRunner
from tests.k8s.test_operator import OperatorProcess, condition, install_crd
from tests.support.procs import ServerProcess, free_port

T = TypeVar("T")
POOL = "tiny"
MODEL = "tiny.en"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}\n{log()}", pytrace=False
            )
        time.sleep(0.25)


class Load:
    """``clients`` threads sending the clip in a loop until stopped (bounded in requests and
    time); every answer's status is kept."""

    def __init__(self, router: str, clip: Path, clients: int, max_each: int = 60) -> None:
        self._stop = threading.Event()
        self.codes: list[int] = []
        self.failures: list[str] = []
        body = clip.read_bytes()

        def client() -> None:
            with httpx.Client(timeout=180) as http:
                for _ in range(max_each):
                    if self._stop.is_set():
                        return
                    try:
                        r = http.post(
                            f"{router}/v1/audio/transcriptions",
                            data={"model": MODEL},
                            files={"file": (clip.name, body)},
                        )
                        self.codes.append(r.status_code)
                        if r.status_code != 200:
                            self.failures.append(r.text[:300])
                    except httpx.HTTPError as e:
                        self.failures.append(repr(e))

        self._pool = concurrent.futures.ThreadPoolExecutor(clients)
        self._futures = [self._pool.submit(client) for _ in range(clients)]

    def stop(self, timeout: float = 180) -> None:
        self._stop.set()
        concurrent.futures.wait(self._futures, timeout=timeout)
        self._pool.shutdown(wait=False)


class World:
    """Reads of the cluster for one namespace."""

    def __init__(self, cp: ControlPlane, namespace: str) -> None:
        self.cp, self.ns = cp, namespace

    def get(self, *what: str) -> Any:
        r = self.cp.kubectl("-n", self.ns, "get", *what, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def pool(self) -> dict[str, Any]:
        return self.get("asrpool", POOL) or {}

    def replicas(self) -> int:
        return int(self.pool().get("spec", {}).get("replicas", -1))

    def pods(self) -> list[dict[str, Any]]:
        return (self.get("pods", "-l", f"asrpool.dev/pool={POOL}") or {}).get("items", [])

    def ready_pods(self) -> int:
        return sum(1 for p in self.pods() if condition(p, "Ready").get("status") == "True")

    def events(self) -> list[tuple[str, str, str]]:
        items = (self.get("events") or {}).get("items", [])
        return sorted(
            ((e["type"], e["reason"], e["message"]) for e in items
             if e["involvedObject"]["kind"] == "ASRPool"),
            key=lambda e: e[1],
        )  # fmt: skip

    def reasons(self) -> set[str]:
        return {reason for _, reason, _ in self.events()}


@pytest.fixture
def cluster(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[tuple[World, str, OperatorProcess, PodRunner]]:
    """KWOK GPU nodes, the router (and the Pod that points the operator at it), the operator
    reading it, and the pods' kubelet."""
    cp = control_plane
    install_crd(cp)
    port = free_port()
    router = ServerProcess(
        [
            "router",
            "--kubernetes",
            "--namespace",
            namespace,
            "--no-auth",
            "--port",
            str(port),
            "--cache-mb",
            "0",
        ],  # routing is under test: every request must reach a pod
        port,
        tmp_path / "router.log",
        env={"KUBECONFIG": str(cp.kubeconfig)},
    )
    op = OperatorProcess(
        cp.kubeconfig, namespace, tmp_path / "operator.log",
        "--router-selector", "app.kubernetes.io/component=router",
        "--router-metrics-port", str(port),
    )  # fmt: skip
    try:
        with gpu_nodes(cp, tmp_path, {f"gpu-a-{namespace}": 2, f"gpu-b-{namespace}": 2}) as nodes:
            router.wait_ready(timeout=60)
            cp.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "router",
                             "labels": {"app.kubernetes.io/component": "router"}},
                "spec": {"nodeName": nodes[0], "tolerations": [TOLERATION],
                         "containers": [{"name": "router", "image": "router"}]},
            }))  # fmt: skip
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            cp.kubectl(
                "-n", namespace, "patch", "pod", "router", "--subresource=status",
                "--type=merge", "-p", json.dumps({"status": {
                    "phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                    "conditions": [{"type": "Ready", "status": "True",
                                    "lastTransitionTime": now}]}}),
            )  # fmt: skip
            op.start()
            with PodRunner(cp, namespace, POOL, tmp_path) as runner:
                yield World(cp, namespace), router.url, op, runner
                assert not runner.errors, runner.errors[:5]
    finally:
        op.stop()
        router.stop()


def pool_spec(max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "metadata": {"name": POOL},
        "spec": {
            "model": MODEL,
            "image": "ghcr.io/asrpool/worker:0.1.0",
            "replicas": 0,
            "autoscaling": {
                "minReplicas": 0, "maxReplicas": max_replicas,
                "stableWindowSeconds": 6, "panicWindowSeconds": 2,
                "scaleDownStabilizationSeconds": 6, "scaleToZeroDelaySeconds": 15,
            },
            "concurrency": {"perPod": 1, "queueTimeoutSeconds": 60,
                            "coldStartTimeoutSeconds": 150},
            "resources": {"gpus": 1, "tolerations": [TOLERATION]},
            "drain": {"preStopSeconds": 1, "timeoutSeconds": 30},
        },
    }  # fmt: skip


def test_a_pool_scales_from_zero_to_its_maximum_back_to_zero_and_stops_at_the_gpus(
    cluster: tuple[World, str, OperatorProcess, PodRunner], speech: Any
) -> None:
    world, router, op, runner = cluster
    cp, clip = world.cp, speech["fox"].path
    log = op.tail
    cp.kubectl("-n", world.ns, "apply", "-f", "-", input=json.dumps(pool_spec(4)))
    wait_for("the router to serve the pool", lambda: _serves(router), 30, log)

    # 1. From zero: the burst waits in the router while pods come, up to the maximum.
    burst = Load(router, clip, clients=6)
    try:
        wait_for("4 ready pods", lambda: world.ready_pods() == 4, 150, log)
        on_nodes = {p["spec"]["nodeName"] for p in world.pods()}
        assert len(on_nodes) == 2, on_nodes  # 2 GPUs a node: the scheduler used both
        time.sleep(3)  # every pod serves a little
    finally:
        burst.stop()
    assert burst.failures == [] and len(burst.codes) >= 6, burst.failures[:3]
    assert world.replicas() == 4
    up = [m for _, r, m in world.events() if r == "ScaledUp"]
    assert up and up[0].startswith("0 → "), up
    pool = world.pool()
    assert pool["status"]["autoscaling"]["lastScale"]["reason"] == "ScaledUp"
    assert condition(pool, "Autoscaling")["reason"] == "Active"

    # 2. Down after the delay, halving, the busy pod kept; then zero after the longer delay.
    trickle = Load(router, clip, clients=1, max_each=200)
    try:
        wait_for("scaled down to 1", lambda: world.replicas() == 1, 60, log)
        wait_for("3 pods stopped", lambda: len(runner.deleted) >= 3, 60, log)
    finally:
        trickle.stop()
    assert trickle.failures == [], trickle.failures[:3]
    downs = [_sizes(m) for _, r, m in world.events() if r == "ScaledDown"]
    assert any(a == 4 for a, _ in downs) and all(b >= a // 2 for a, b in downs), downs
    # Marked before each scale-down by what the router runs on them: the trickle's pod cost 1,
    # the idle ones 0, and the ReplicaSet removed only idle ones.
    costs = [d.annotations.get(DELETION_COST) for d in runner.deleted.values()]
    assert costs == ["0"] * len(costs), costs
    wait_for("scaled to zero", lambda: world.replicas() == 0 and not world.pods(), 60, log)
    assert condition(world.pool(), "Ready")["reason"] == "ScaledToZero"

    # 3. Short of GPUs: another pod holds one, 6 allowed; the fourth pod waits, no more come.
    cp.kubectl("-n", world.ns, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-hog"},
        "spec": {"tolerations": [TOLERATION], "containers": [{
            "name": "hog", "image": "hog", "resources": {"limits": {GPU: "1"}}}]},
    }))  # fmt: skip
    wait_for("the hog placed", lambda: (world.get("pod", "gpu-hog") or {}).get("spec", {})
             .get("nodeName"), 30, log)  # fmt: skip
    cp.kubectl("-n", world.ns, "patch", "asrpool", POOL, "--type=merge",
               "-p", json.dumps({"spec": {"autoscaling": {"maxReplicas": 6}}}))  # fmt: skip
    burst = Load(router, clip, clients=8)
    try:
        short = wait_for(
            "InsufficientGPU",
            lambda: (
                (p := world.pool())
                and condition(p, "Degraded").get("reason") == "InsufficientGPU"
                and p
            ),
            150,
            log,
        )
        wait_for("3 ready pods", lambda: world.ready_pods() == 3, 120, log)
        pending = {p["metadata"]["uid"] for p in world.pods() if not p["spec"].get("nodeName")}
        held = world.replicas()
        for _ in range(8):  # a few decisions with the queue still long: no growth, no churn
            time.sleep(1)
            assert world.replicas() == held
        still = {p["metadata"]["uid"] for p in world.pods() if not p["spec"].get("nodeName")}
        assert still == pending and len(pending) == held - 3
    finally:
        burst.stop()
    assert burst.failures == [], burst.failures[:3]
    message = condition(short, "Degraded")["message"]
    assert f"pod waits for {GPU}" in message or f"pods wait for {GPU}" in message, message
    autoscaling = condition(world.pool(), "Autoscaling")
    assert autoscaling["reason"] == "InsufficientGPU", autoscaling
    assert f"growth held at {held} pods" in autoscaling["message"]
    assert {"ScaledUp", "ScaledDown", "InsufficientGPU"} <= world.reasons()
    assert "Traceback" not in op.log(), op.tail()


def _sizes(message: str) -> tuple[int, int]:
    """``"4 → 2 pods: …"`` → (4, 2)."""
    before, after = message.split(" pods", 1)[0].split(" → ")
    return int(before), int(after)


def _serves(router: str) -> bool:
    models = httpx.get(f"{router}/v1/models", timeout=5).json()["data"]
    return any(m["id"] == MODEL for m in models)
