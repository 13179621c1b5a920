"""The CRD and the operator on a real kube-apiserver (with the controller-manager and scheduler).

The operator runs as it does in a pod, as a separate process (``python -m asrpool_operator``),
so a test can stop it and start it again. There are no nodes, so worker pods stay Pending
(the scheduler says why), unless a test adds a Node object and writes pod statuses itself,
the way a kubelet would. Every wait is bounded; a failure prints the operator's log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.k8s.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "asrpool.yaml"
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
WAIT_S = 60  # the operator reacts in about a second; the garbage collector can take longer
T = TypeVar("T")


# --- helpers (test_chart.py uses them too)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT_S, log: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{log}", pytrace=False)
        time.sleep(0.25)


def get(cp: ControlPlane, namespace: str, *what: str) -> dict[str, Any] | None:
    """``kubectl get`` as a dict, or None when it does not exist."""
    r = cp.kubectl("-n", namespace, "get", *what, "-o", "json", check=False)
    if r.returncode != 0:
        assert "NotFound" in r.stderr, r.stderr
        return None
    return json.loads(r.stdout)


def apply(cp: ControlPlane, namespace: str, manifest: dict[str, Any] | str) -> str:
    body = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return cp.kubectl("-n", namespace, "apply", "-f", "-", input=body).stdout


def condition(pool: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for c in ((pool or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return c
    return {}


def install_crd(cp: ControlPlane) -> None:
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cp.kubectl("wait", "--for=condition=Established", "crd/asrpools.asrpool.dev", "--timeout=60s")
    # Established comes before discovery and the published OpenAPI (what `kubectl explain`
    # reads) include the resource: wait for both.
    wait_for(
        "kubectl to know asrpools",
        lambda: (
            cp.kubectl("get", "asrpools", "-A", check=False).returncode == 0
            and cp.kubectl("explain", "asrpool.spec.model", check=False).returncode == 0
        ),
    )


class OperatorProcess:
    """``python -m asrpool_operator`` against the test cluster, with its log in a file."""

    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, *extra: str) -> None:
        self.argv = [
            sys.executable, "-m", "asrpool_operator",
            "--namespace", namespace,
            "--resync-interval", "1",
            "--autoscale-interval", "1",
            "--liveness-port", "0",
            "--log-level", "DEBUG",  # the API calls show in the log: the tests count them
            *extra,
        ]  # fmt: skip
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self) -> None:
        self._starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self._starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def current_log(self) -> str:
        """The log of the latest start only."""
        return self.log().rsplit(f"--- start {self._starts}\n", 1)[-1]

    def tail(self, lines: int = 60) -> str:
        return "operator log:\n" + "\n".join(self.log().splitlines()[-lines:])


# --- fixtures


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    install_crd(control_plane)


@pytest.fixture
def operator(
    control_plane: ControlPlane, namespace: str, crd: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(control_plane.kubeconfig, namespace, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()


def gpu_pool(name: str = "large-v3", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "metadata": {"name": name},
        "spec": {
            "model": "large-v3",
            "replicas": 2,
            "resources": {"gpus": 1, "memory": "12Gi", "cpu": "2"},
            **spec,
        },
    }


# --- the CRD alone


def test_kubectl_explain_teaches_the_spec(control_plane: ControlPlane, crd: None) -> None:
    spec = control_plane.kubectl("explain", "asrpool.spec").stdout
    assert "What the pool serves and how its worker pods run." in spec
    for field in ("model", "autoscaling", "concurrency", "retry", "resources", "realtime"):
        assert f"  {field}\t" in spec
    per_pod = control_plane.kubectl("explain", "asrpool.spec.concurrency.perPod").stdout
    assert "Requests one worker pod runs at once" in per_pod
    assert "Default: 2." in per_pod


INVALID = [
    ("min above max", {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
     "spec.autoscaling.minReplicas: Invalid value",
     "autoscaling.minReplicas must not exceed autoscaling.maxReplicas"),
    ("no slots", {"concurrency": {"perPod": 0}}, "spec.concurrency.perPod: Invalid value: 0",
     "concurrency.perPod must be at least 1: a pod with no slots never serves a request"),
    ("two model sources", {"modelSource": {"baked": {"path": "/a"}, "hostPath": {"path": "/b"}}},
     "spec.modelSource: Invalid value",
     "modelSource needs exactly one of baked, persistentVolumeClaim, hostPath"),
    ("ejection base above max", {"retry": {"ejection": {"baseEjectionSeconds": 200}}},
     "spec.retry.ejection: Invalid value",
     "retry.ejection.baseEjectionSeconds must not exceed retry.ejection.maxEjectionSeconds"),
    ("memory not a quantity", {"resources": {"memory": "lots"}}, "spec.resources.memory",
     "resources.memory must be a positive quantity such as 8Gi or 512Mi"),
    ("unknown server type", {"server": {"type": "triton"}}, "spec.server.type",
     'supported values: "asrpool", "openai-compatible"'),
    ("panic window above the stable one",
     {"autoscaling": {"maxReplicas": 4, "stableWindowSeconds": 30, "panicWindowSeconds": 40}},
     "spec.autoscaling.panicWindowSeconds: Invalid value",
     "autoscaling.panicWindowSeconds must not exceed autoscaling.stableWindowSeconds"),
    ("autoscaling without a ceiling", {"autoscaling": {"minReplicas": 0}},
     "spec.autoscaling.maxReplicas: Invalid value",
     "autoscaling.maxReplicas is required while autoscaling.enabled is true"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "where", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_the_api_server_refuses_invalid_pools_with_a_readable_message(
    control_plane: ControlPlane, namespace: str, crd: None, change: dict[str, Any], where: str,
    message: str,
) -> None:  # fmt: skip
    pool = gpu_pool()
    pool["spec"].update(change)
    r = control_plane.kubectl(
        "-n", namespace, "create", "-f", "-", input=json.dumps(pool), check=False
    )
    assert r.returncode != 0
    assert where in r.stderr and message in r.stderr, r.stderr


def test_a_name_too_long_for_its_service_is_refused(
    control_plane: ControlPlane, namespace: str, crd: None
) -> None:
    r = control_plane.kubectl(
        "-n", namespace, "create", "-f", "-", input=json.dumps(gpu_pool("x" * 57)), check=False
    )
    assert r.returncode != 0
    assert "its Service is named NAME-worker" in r.stderr, r.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_accepted_by_the_api_server(
    control_plane: ControlPlane, namespace: str, crd: None, path: Path
) -> None:
    out = control_plane.kubectl(
        "-n", namespace, "apply", "--dry-run=server", "--validate=strict", "-f", str(path)
    ).stdout
    assert "(server dry run)" in out


def test_defaults_are_filled_in_by_the_api_server(
    control_plane: ControlPlane, namespace: str, crd: None
) -> None:
    out = control_plane.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-o", "json", "-f", "-",
        input=json.dumps({"apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool",
                          "metadata": {"name": "bare"}, "spec": {"model": "tiny.en"}}),
    ).stdout  # fmt: skip
    spec = json.loads(out)["spec"]
    assert spec["concurrency"] == {
        "perPod": 2, "maxQueue": 64, "queueTimeoutSeconds": 120, "coldStartTimeoutSeconds": 600,
    }  # fmt: skip
    assert spec["replicas"] == 1 and spec["server"]["port"] == 9000


# --- the operator


def test_a_pool_gets_a_deployment_service_and_budget_owned_by_it(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    apply(cp, namespace, gpu_pool())
    pool = get(cp, namespace, "asrpool", "large-v3")
    assert pool is not None
    dep = wait_for(
        "the worker Deployment",
        lambda: get(cp, namespace, "deployment", "large-v3-worker"),
        log=operator.tail(),
    )
    svc = get(cp, namespace, "service", "large-v3-worker")
    pdb = get(cp, namespace, "pdb", "large-v3-worker")
    assert svc is not None and pdb is not None
    owner = {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "name": "large-v3",
        "uid": pool["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for child in (dep, svc, pdb):
        assert child["metadata"]["ownerReferences"] == [owner]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["args"][:7] == [
        "worker", "--host", "0.0.0.0", "--port", "9000", "--model-name", "large-v3",
    ]  # fmt: skip
    assert dep["spec"]["replicas"] == 2
    assert svc["spec"]["clusterIP"] == "None"
    assert pdb["spec"]["maxUnavailable"] == 1


def test_unschedulable_pods_make_the_pool_degraded_with_a_warning_event(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    apply(cp, namespace, gpu_pool())
    pool = wait_for(
        "Degraded=Unschedulable",
        lambda: (
            (p := get(cp, namespace, "asrpool", "large-v3"))
            and condition(p, "Degraded").get("reason") == "Unschedulable"
            and p
        ),
        log=operator.tail(),
    )
    assert condition(pool, "Ready")["status"] == "False"
    assert "add nodes with free nvidia.com/gpu" in condition(pool, "Degraded")["message"]
    assert pool["status"]["selector"] == (
        "app.kubernetes.io/component=worker,app.kubernetes.io/part-of=asrpool,"
        "asrpool.dev/pool=large-v3"
    )
    events = wait_for(
        "the Unschedulable event",
        lambda: [
            e
            for e in (get(cp, namespace, "events") or {}).get("items", [])
            if e["involvedObject"]["kind"] == "ASRPool" and e["reason"] == "Unschedulable"
        ],
    )
    assert events[0]["type"] == "Warning"


def test_kubectl_scale_resizes_the_deployment_and_get_shows_the_columns(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    apply(cp, namespace, gpu_pool())
    wait_for("the Deployment", lambda: get(cp, namespace, "deployment", "large-v3-worker"))
    cp.kubectl("-n", namespace, "scale", "asrpool/large-v3", "--replicas=3")
    wait_for(
        "3 replicas on the Deployment",
        lambda: (
            (d := get(cp, namespace, "deployment", "large-v3-worker"))
            and d["spec"]["replicas"] == 3
        ),
        log=operator.tail(),
    )
    table = cp.kubectl("-n", namespace, "get", "asrpools").stdout.splitlines()
    assert table[0].split() == ["NAME", "MODEL", "READY", "DESIRED", "QUEUE", "AGE"]
    assert table[1].split()[:4] == ["large-v3", "large-v3", "0", "3"]
    short = cp.kubectl("-n", namespace, "get", "asrp", "-o", "name").stdout.strip()
    assert short == "asrpool.asrpool.dev/large-v3"


def _node(cp: ControlPlane, name: str) -> None:
    """A Node with 8 GPUs and no kubelet: the scheduler binds pods to it and nothing runs
    them, so the test writes their statuses. Cluster-scoped: deleted by the caller."""
    cp.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    ))  # fmt: skip
    resources = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    status = {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "a test's node", "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now()}],
    }  # fmt: skip
    cp.kubectl(
        "patch", "node", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _set_pod_status(cp: ControlPlane, namespace: str, pod: str, ready: bool, **state: Any) -> None:
    container = {
        "name": "worker", "ready": ready, "restartCount": 1 if state else 0,
        "image": "ghcr.io/asrpool/worker:0.1.0", "imageID": "", "started": ready,
        "state": state.get("state", {"running": {"startedAt": _now()}}),
        "lastState": state.get("lastState", {}),
    }  # fmt: skip
    status = {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": _now()},
            {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": _now()},
        ],
        "containerStatuses": [container],
    }
    cp.kubectl(
        "-n", namespace, "patch", "pod", pod, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_pods_turning_ready_then_oom_killed_show_in_status_and_events(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    node = f"gpu-{namespace}"
    _node(cp, node)
    try:
        apply(cp, namespace, gpu_pool(replicas=1))
        pod = wait_for(
            "a worker pod bound to the node",
            lambda: [
                p["metadata"]["name"]
                for p in (get(cp, namespace, "pods") or {}).get("items", [])
                if p["spec"].get("nodeName") == node
            ],
        )[0]
        _set_pod_status(cp, namespace, pod, ready=True)
        ready = wait_for(
            "Ready=True",
            lambda: (
                (p := get(cp, namespace, "asrpool", "large-v3"))
                and condition(p, "Ready").get("status") == "True"
                and p
            ),
            log=operator.tail(),
        )
        assert ready["status"]["readyReplicas"] == 1
        assert condition(ready, "Degraded")["reason"] == "Healthy"

        oom = {
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                         "startedAt": _now(), "finishedAt": _now()}},
        }  # fmt: skip
        _set_pod_status(cp, namespace, pod, ready=False, **oom)
        degraded = wait_for(
            "Degraded=OOMKilled and Ready=False",
            # Two paths: the pod's event says OOMKilled at once; Ready follows the Deployment.
            lambda: (
                (p := get(cp, namespace, "asrpool", "large-v3"))
                and condition(p, "Degraded").get("reason") == "OOMKilled"
                and condition(p, "Ready").get("status") == "False"
                and p
            ),
            log=operator.tail(),
        )
        assert (
            f"pod {pod}: container worker was OOMKilled"
            in condition(degraded, "Degraded")["message"]
        )
        wait_for(
            "the Ready, OOMKilled and NotReady events",
            lambda: (
                _pool_events(cp, namespace)
                >= {("Normal", "Ready"), ("Warning", "OOMKilled"), ("Warning", "NotReady")}
            ),
        )
    finally:
        cp.kubectl("delete", "node", node, "--wait=false", check=False)


def _pool_events(cp: ControlPlane, namespace: str) -> set[tuple[str, str]]:
    """(type, reason) of every Event posted on an ASRPool of the namespace."""
    items = (get(cp, namespace, "events") or {}).get("items", [])
    return {(e["type"], e["reason"]) for e in items if e["involvedObject"]["kind"] == "ASRPool"}


def _versions(cp: ControlPlane, namespace: str) -> dict[str, str]:
    out = cp.kubectl(
        "-n", namespace, "get", "asrpool/large-v3", "deployment/large-v3-worker",
        "service/large-v3-worker", "pdb/large-v3-worker", "-o", "json",
    ).stdout  # fmt: skip
    return {i["kind"]: i["metadata"]["resourceVersion"] for i in json.loads(out)["items"]}


def _settled_versions(cp: ControlPlane, namespace: str, quiet_s: float = 3.0) -> dict[str, str]:
    """The resourceVersions once nothing has changed for ``quiet_s`` (three resyncs): the
    controllers and the operator have stopped writing."""
    last, since = _versions(cp, namespace), time.monotonic()

    def quiet() -> dict[str, str] | None:
        nonlocal last, since
        now = _versions(cp, namespace)
        if now != last:
            last, since = now, time.monotonic()
        return now if time.monotonic() - since >= quiet_s else None

    return wait_for(f"{quiet_s:g} s without a write", quiet)


def test_restarting_the_operator_changes_nothing(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    apply(cp, namespace, gpu_pool())
    wait_for(
        "a settled status (Degraded=Unschedulable)",
        lambda: (
            condition(get(cp, namespace, "asrpool", "large-v3"), "Degraded").get("reason")
            == "Unschedulable"
        ),
        log=operator.tail(),
    )
    before = _settled_versions(cp, namespace)
    operator.stop()
    operator.start()
    # Two full passes of the new process: the initial listing, then resyncs (one a second).
    wait_for(
        "the restarted operator to re-check the pool three times",
        lambda: operator.current_log().count(f"/api/v1/namespaces/{namespace}/pods?") >= 3,
        log=operator.tail(),
    )
    assert _versions(cp, namespace) == before
    assert "Traceback" not in operator.current_log(), operator.tail()


def test_deleting_the_pool_deletes_its_children(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    apply(cp, namespace, gpu_pool())
    wait_for("the PodDisruptionBudget", lambda: get(cp, namespace, "pdb", "large-v3-worker"))
    cp.kubectl("-n", namespace, "delete", "asrpool", "large-v3", "--timeout=60s")
    wait_for(
        "the garbage collector to delete the Deployment, Service and PodDisruptionBudget",
        lambda: all(
            get(cp, namespace, kind, "large-v3-worker") is None
            for kind in ("deployment", "service", "pdb")
        ),
        log=operator.tail(),
    )
    assert "Traceback" not in operator.log(), operator.tail()


def test_an_object_the_pool_does_not_own_is_left_alone(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    cp.kubectl("-n", namespace, "create", "service", "clusterip", "large-v3-worker",
               "--tcp=80:8080")  # fmt: skip
    theirs = get(cp, namespace, "service", "large-v3-worker")
    assert theirs is not None
    apply(cp, namespace, gpu_pool())
    pool = wait_for(
        "Degraded=NameConflict",
        lambda: (
            (p := get(cp, namespace, "asrpool", "large-v3"))
            and condition(p, "Degraded").get("reason") == "NameConflict"
            and p
        ),
        log=operator.tail(),
    )
    assert "Service large-v3-worker already exists" in condition(pool, "Degraded")["message"]
    after = get(cp, namespace, "service", "large-v3-worker")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]


def test_a_third_party_server_pool_runs_its_image_with_its_own_probes(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    example = yaml.safe_load((REPO / "examples" / "03-openai-compatible-server.yaml").read_text())
    apply(cp, namespace, example)
    dep = wait_for(
        "the Deployment",
        lambda: get(cp, namespace, "deployment", "distil-large-v3-worker"),
        log=operator.tail(),
    )
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/speaches-ai/speaches:latest-cuda"
    assert "command" not in container
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["ports"][0]["containerPort"] == 8000


class RouterMetricsPage:
    """Stands in for a router pod's /metrics: with no kubelet, no router pod can run here, so
    a Pod object points (podIP 127.0.0.1) at this page, which serves what a router would."""

    def __init__(self) -> None:
        self.text = ""
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = page.text.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def load(self, model: str, in_flight: int, queued: int) -> None:
        self.text = (
            "# TYPE asrpool_router_queue_depth gauge\n"
            f'asrpool_router_queue_depth{{pool="{model}"}} {queued}\n'
            "# TYPE asrpool_router_in_flight gauge\n"
            f'asrpool_router_in_flight{{pod="10.0.0.9:9000",pool="{model}"}} {in_flight}\n'
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ready_bound_pods(cp: ControlPlane, namespace: str, node: str) -> bool:
    """Be the node's kubelet for worker pods: each one bound to it turns ready."""
    for p in (get(cp, namespace, "pods", "-l", "asrpool.dev/pool") or {}).get("items", []):
        bound = p["spec"].get("nodeName") == node
        if bound and condition(p, "Ready").get("status") != "True":
            _set_pod_status(cp, namespace, p["metadata"]["name"], ready=True)
    return True


def test_the_autoscaler_follows_the_routers_load(
    control_plane: ControlPlane, namespace: str, crd: None, tmp_path: Path
) -> None:
    cp = control_plane
    node = f"cpu-{namespace}"
    page = RouterMetricsPage()
    page.load("tiny.en", in_flight=4, queued=9)
    _node(cp, node)
    op = OperatorProcess(
        cp.kubeconfig, namespace, tmp_path / "operator.log",
        "--router-selector", "app.kubernetes.io/component=router",
        "--router-metrics-port", str(page.port),
    )  # fmt: skip
    try:
        apply(cp, namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "router", "labels": {"app.kubernetes.io/component": "router"}},
            "spec": {"nodeName": node, "containers": [{"name": "router", "image": "router"}]},
        })  # fmt: skip
        cp.kubectl(
            "-n", namespace, "patch", "pod", "router", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {
                "phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _now()}],
            }}),
        )  # fmt: skip
        op.start()
        apply(cp, namespace, {
            "apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool",
            "metadata": {"name": "tiny-en"},
            "spec": {"model": "tiny.en", "concurrency": {"perPod": 2},
                     "autoscaling": {"minReplicas": 1, "maxReplicas": 6,
                                     "stableWindowSeconds": 6, "panicWindowSeconds": 2,
                                     "scaleDownStabilizationSeconds": 0}},
        })  # fmt: skip
        # 4 in flight, 9 queued, 2 slots a pod: up to the maximum, in steps as pods turn
        # ready (growth is capped against ready pods: this test is their kubelet).
        wait_for(
            "6 worker replicas",
            lambda: (
                _ready_bound_pods(cp, namespace, node)
                and (get(cp, namespace, "deployment", "tiny-en-worker") or {})
                .get("spec", {})
                .get("replicas")
                == 6
            ),
            log=op.tail(),
        )
        wait_for(
            "the QUEUE column",
            lambda: (
                cp.kubectl("-n", namespace, "get", "asrpool", "tiny-en")
                .stdout.splitlines()[1]
                .split()[4]
                == "9"
            ),
        )
        table = cp.kubectl("-n", namespace, "get", "asrpool", "tiny-en").stdout.splitlines()
        row = table[1].split()  # NAME MODEL READY DESIRED QUEUE AGE
        assert (row[1], row[3], row[4]) == ("tiny.en", "6", "9") and row[2].isdigit()
        assert {("Normal", "ScaledUp")} <= _pool_events(cp, namespace)

        page.load("tiny.en", in_flight=0, queued=0)
        wait_for(
            "back to 1 replica",
            lambda: (
                (get(cp, namespace, "asrpool", "tiny-en") or {})["spec"]["replicas"] == 1
                and (get(cp, namespace, "deployment", "tiny-en-worker") or {})["spec"]["replicas"]
                == 1
            ),
            log=op.tail(),
        )
        assert {("Normal", "ScaledDown")} <= _pool_events(cp, namespace)
    finally:
        op.stop()
        page.close()
        cp.kubectl("delete", "node", node, "--wait=false", check=False)


def test_the_autoscaler_refuses_to_fight_an_hpa_and_yields_to_it_when_disabled(
    control_plane: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    cp = control_plane
    apply(cp, namespace, gpu_pool(replicas=2, autoscaling={"minReplicas": 1, "maxReplicas": 4}))
    apply(cp, namespace, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-large-v3"},
        "spec": {"scaleTargetRef": {"apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool",
                                    "name": "large-v3"},
                 "minReplicas": 2, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
    })  # fmt: skip
    refused = wait_for(
        "Autoscaling=False ExternalScaler",
        lambda: (
            (p := get(cp, namespace, "asrpool", "large-v3"))
            and condition(p, "Autoscaling").get("reason") == "ExternalScaler"
            and p
        ),
        log=operator.tail(),
    )
    assert condition(refused, "Autoscaling")["status"] == "False"
    assert (
        "HorizontalPodAutoscaler keda-hpa-large-v3" in condition(refused, "Autoscaling")["message"]
    )
    wait_for("the ExternalScaler warning", lambda: ("Warning", "ExternalScaler")
             in _pool_events(cp, namespace))  # fmt: skip
    # No router load at all: the operator's own rule would hold; it must not act either way.
    assert "ScaledUp" not in {r for _, r in _pool_events(cp, namespace)}
    cp.kubectl("-n", namespace, "patch", "asrpool", "large-v3", "--type=merge",
               "-p", json.dumps({"spec": {"autoscaling": {"enabled": False}}}))  # fmt: skip
    wait_for(
        "Autoscaling=False Disabled",
        lambda: (
            condition(get(cp, namespace, "asrpool", "large-v3"), "Autoscaling").get("reason")
            == "Disabled"
        ),
        log=operator.tail(),
    )
