"""The router in Kubernetes mode, against a real API server and real workers on 127.0.0.1.

The ASRPool and its EndpointSlices are real API objects; the slices are written by the
test (no kubelet runs pods here) and point at real worker processes, each in a network
namespace of its own with its own address (Kubernetes refuses loopback endpoints), so
routing can be checked end to end as endpoints appear, turn terminating and disappear.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.k8s.controlplane import ControlPlane
from tests.support.netns import pod_host
from tests.support.procs import LEAN_WORKER, ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
WORKER_PORT = 9000  # every "pod" listens on the same port, on its own address


@contextlib.contextmanager
def pod_workers(tmp: Path, n: int) -> Iterator[list[ServerProcess]]:
    """``n`` real workers, each in its own network namespace, like pods with their own IPs."""
    with contextlib.ExitStack() as stack:
        hosts = [stack.enter_context(pod_host()) for _ in range(n)]
        procs = []
        for i, host in enumerate(hosts):
            proc = ServerProcess(
                ["worker", "--host", host.ip, "--port", str(WORKER_PORT), *LEAN_WORKER],
                WORKER_PORT,
                tmp / f"pod-{i}.log",
                prefix=host.exec_prefix(),
                host=host.ip,
            )
            stack.callback(proc.stop)
            procs.append(proc)
        for proc in procs:
            proc.wait_ready()
        yield procs


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", str(REPO / "crds" / "asrpool.yaml"))
    control_plane.kubectl(
        "wait", "--for=condition=established", "--timeout=60s", "crd/asrpools.asrpool.dev"
    )


def apply(cp: ControlPlane, namespace: str, obj: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def asrpool(name: str, model: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "metadata": {"name": name},
        "spec": {"model": model, **spec},
    }


def endpoint_slice(
    name: str, pool: str, worker: ServerProcess, *, ready: bool = True, terminating: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "asrpool.dev/pool": pool,
                "kubernetes.io/service-name": pool,
                "endpointslice.kubernetes.io/managed-by": "asrpool-tests",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": worker.port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [worker.host],
                "targetRef": {"kind": "Pod", "name": name},
                "conditions": {
                    "ready": ready,
                    "serving": ready or terminating,
                    "terminating": terminating,
                },
            }
        ],
    }


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout}s (last: {last!r})")


def pods(router: str) -> dict[str, dict[str, Any]]:
    stats = httpx.get(f"{router}/stats", timeout=10).json()
    return {p["id"]: p for pool in stats["pools"] for p in pool["pods"]}


def served(worker: ServerProcess) -> float:
    for line in httpx.get(f"{worker.url}/metrics", timeout=5).text.splitlines():
        if line.startswith('asrpool_worker_requests_total{code="ok",endpoint="transcriptions"}'):
            return float(line.split()[-1])
    return 0.0


def transcribe(router: str, path: Path, timeout: float = 120) -> httpx.Response:
    return httpx.post(
        f"{router}/v1/audio/transcriptions",
        timeout=timeout,
        files={"file": (path.name, path.read_bytes())},
    )


@contextlib.contextmanager
def router_logged_in_by(kubeconfig: Path, namespace: str, log: Path) -> Iterator[str]:
    """A router in Kubernetes mode whose only credentials are ``kubeconfig``'s; ready once it
    has listed the namespace's ASRPools and EndpointSlices."""
    port = free_port()
    proc = ServerProcess(
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
        log,
        env={"KUBECONFIG": str(kubeconfig)},
    )
    try:
        proc.wait_ready(timeout=60)
        yield proc.url
    finally:
        proc.stop()


@pytest.fixture
def k8s_router(
    control_plane: ControlPlane, crd: None, namespace: str, tmp_path: Path
) -> Iterator[str]:
    with router_logged_in_by(control_plane.kubeconfig, namespace, tmp_path / "router.log") as url:
        yield url


def pool_models(router: str) -> list[str]:
    """The pools (aliases and OpenAI's names for the default pool are listed too)."""
    cards = httpx.get(f"{router}/v1/models").json()["data"]
    return sorted(m["id"] for m in cards if m["asrpool_kind"] == "pool")


def test_routing_follows_endpoints_as_they_come_turn_terminating_and_go(
    control_plane: ControlPlane, namespace: str, k8s_router: str, tmp_path: Path, speech
):
    cp, fox = control_plane, speech["fox"].path
    apply(
        cp,
        namespace,
        asrpool(
            "tiny",
            "tiny.en",
            concurrency={"perPod": 1, "queueTimeoutSeconds": 3, "coldStartTimeoutSeconds": 3},
        ),
    )
    with pod_workers(tmp_path, 2) as (a, b):
        apply(cp, namespace, endpoint_slice("tiny-a", "tiny", a))
        eventually(lambda: "tiny-a" in pods(k8s_router), "pod a discovered")
        assert transcribe(k8s_router, fox).status_code == 200
        assert served(a) == 1

        apply(cp, namespace, endpoint_slice("tiny-b", "tiny", b))
        eventually(lambda: {"tiny-a", "tiny-b"} <= set(pods(k8s_router)), "pod b discovered")
        assert pods(k8s_router)["tiny-b"]["max_budget"] == 1  # perPod from the ASRPool

        # A terminating endpoint gets no new work, at once.
        apply(cp, namespace, endpoint_slice("tiny-a", "tiny", a, ready=False, terminating=True))
        eventually(lambda: pods(k8s_router)["tiny-a"]["terminating"], "pod a terminating")
        before = served(a)
        for _ in range(3):
            assert transcribe(k8s_router, fox).status_code == 200
        assert served(a) == before and served(b) >= 3

        # Gone from the API: gone from the pool; with no pod left, a clear 503 after the
        # ASRPool's cold-start timeout (no pod is ready to come back to), not a hang.
        cp.kubectl("delete", "-n", namespace, "endpointslice", "tiny-a", "tiny-b")
        eventually(lambda: not pods(k8s_router), "pods removed")
        metrics = httpx.get(f"{k8s_router}/metrics").text
        assert "tiny-a" not in metrics and "tiny-b" not in metrics  # their series went too
        started = time.monotonic()
        answer = transcribe(k8s_router, fox, timeout=30)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert time.monotonic() - started < 15


def test_pools_follow_asrpool_objects(
    control_plane: ControlPlane, namespace: str, k8s_router: str, tmp_path: Path, speech
):
    cp = control_plane
    apply(cp, namespace, asrpool("small", "tiny.en", concurrency={"perPod": 1}))
    apply(cp, namespace, asrpool("other", "large-v3"))

    def models() -> list[str]:
        return pool_models(k8s_router)

    eventually(lambda: models() == ["large-v3", "tiny.en"], "both pools listed")
    with pod_workers(tmp_path, 1) as (w,):
        apply(cp, namespace, endpoint_slice("small-0", "small", w))
        eventually(lambda: "small-0" in pods(k8s_router), "pod discovered")
        # Edited in place: the budget follows perPod without a restart, and aliases route
        # (whisper-1 among them makes this the default pool, though "other" sorts first).
        apply(
            cp,
            namespace,
            asrpool("small", "tiny.en", concurrency={"perPod": 3}, aliases=["whisper-1", "fast"]),
        )
        eventually(lambda: pods(k8s_router)["small-0"]["max_budget"] == 3, "perPod applied")
        for name in ("fast", "whisper-1"):
            by_alias = httpx.post(
                f"{k8s_router}/v1/audio/transcriptions",
                timeout=120,
                data={"model": name},
                files={"file": ("fox.wav", speech["fox"].path.read_bytes())},
            )
            assert by_alias.status_code == 200, (name, by_alias.text)
        answer = httpx.post(
            f"{k8s_router}/v1/audio/transcriptions",
            timeout=120,
            data={"model": "tiny.en"},
            files={"file": ("fox.wav", speech["fox"].path.read_bytes())},
        )
        assert answer.status_code == 200 and "fox" in answer.json()["text"].lower()
    cp.kubectl("delete", "-n", namespace, "asrpool", "other")
    eventually(lambda: models() == ["tiny.en"], "deleted pool no longer listed")
    gone = httpx.post(
        f"{k8s_router}/v1/audio/transcriptions",
        data={"model": "large-v3"},
        files={"file": ("fox.wav", speech["fox"].path.read_bytes())},
    )
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"


EXEC_PLUGIN = """\
import json, pathlib, sys
pathlib.Path(sys.argv[1]).write_text("ran")  # the test checks the router ran it
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": sys.argv[2]},
}))
"""


@pytest.mark.parametrize("login", ["client-certificate", "exec-plugin"])
def test_discovery_logs_in_with_a_client_certificate_or_an_exec_plugin(
    control_plane: ControlPlane, crd: None, namespace: str, tmp_path: Path, login: str
):
    """No token in the kubeconfig: the router authenticates as the kubeconfig says, with
    relative paths read from the kubeconfig's directory, and lists and watches with it."""
    cp, home = control_plane, tmp_path / "kube"
    home.mkdir()
    ran = tmp_path / "plugin-ran"
    if login == "client-certificate":
        cert, key = cp.client_certificate(home, "asrpool-cert-user", "system:masters")
        user: dict[str, Any] = {"client-certificate": cert.name, "client-key": key.name}
    else:
        (home / "plugin.py").write_text(EXEC_PLUGIN)
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": sys.executable,
                "args": [str(home / "plugin.py"), str(ran), cp.token],
            }
        }
    kubeconfig = cp.write_kubeconfig(home / "config", user)
    apply(cp, namespace, asrpool("before", "tiny.en"))
    with router_logged_in_by(kubeconfig, namespace, tmp_path / "router.log") as router:
        assert pool_models(router) == ["tiny.en"]  # listed
        apply(cp, namespace, asrpool("after", "large-v3"))
        eventually(lambda: pool_models(router) == ["large-v3", "tiny.en"], "watched")
    assert ran.exists() == (login == "exec-plugin")
