"""Fixtures for tests on a real one-node cluster: real kubelet, containerd, our images, the chart.

``cluster`` (package: one per session, gone before the rest of the suite runs, whose timing
tests would otherwise share two cores with it) brings up a local cluster (``localcluster``:
what ``make cluster-up`` runs) named after the session, its files in pytest's temporary
directory, and takes it down after the last test here, keeping the logs. With
``ASRPOOL_TEST_KUBECONFIG`` set the tests use that cluster instead (``make e2e-kind``); it must
have our images loaded, the worker's also under the tag ``ROLLOUT_WORKER_IMAGE``. ``release``
installs the chart into ``speech`` with ``helm install --wait``; ``pool`` applies a small CPU
ASRPool (tiny.en) and waits for its pods to be Ready. ``router`` port-forwards the router
Service. When the tools or images cannot be built, or the cluster cannot start, every test here
fails with the reason: these tests never skip.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcluster import cluster as localcluster
from localcluster.layout import Layout
from tests.cluster.kube import Kube, port_forward, wait_for

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NAMESPACE = "speech"
RELEASE = "asrpool"
POOL = "tiny-en"
CHART = REPO / "charts" / "asrpool"
APP_VERSION = re.search(
    r'^appVersion: "([^"]+)"', (CHART / "Chart.yaml").read_text(), re.MULTILINE
).group(1)  # type: ignore[union-attr]
WORKER_IMAGE = f"ghcr.io/asrpool/worker:{APP_VERSION}"
# The same worker under a second name: "a change of the pool's image" without a registry.
ROLLOUT_WORKER_IMAGE = f"{WORKER_IMAGE}-rollout"
# Cold builds: kubelet & co. (~15 min), images (~10 min); the bound only stops a hung build.
BUILD_TIMEOUT_S = 2 * 60 * 60
POOL_READY_S = 240


def _script(name: str, *args: str, timeout: float | None = None) -> list[str]:
    """A build script's stdout lines; pytest.fail with its stderr's end when it fails."""
    result = subprocess.run(
        [str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/{name} failed:\n{result.stderr[-4000:]}", pytrace=False)
    return [line for line in result.stdout.splitlines() if line.strip()]


def _built() -> bool:
    checks = (("build-k8s-tools.sh", "--check"), ("build-images.sh", "--check"))
    return all(
        subprocess.run([str(REPO / "scripts" / s), a], capture_output=True).returncode == 0
        for s, a in checks
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """When something must be built first, lift the per-test timeout of the tests here: the
    session fixture builds inside whichever test asks first."""
    ours = [item for item in items if HERE in item.path.resolve().parents]
    if not ours or os.environ.get("ASRPOOL_TEST_KUBECONFIG") or _built():
        return
    for item in ours:
        item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 900))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "tests/cluster: building kubelet, kube-proxy and the images first "
            "(scripts/build-k8s-tools.sh, scripts/build-images.sh; cached afterwards)",
            yellow=True,
        )


@dataclass
class ClusterUnderTest:
    kube: Kube
    layout: Layout | None  # None: a cluster we did not make (ASRPOOL_TEST_KUBECONFIG)

    def process_status(self, namespace: str, pod: str, container_id: str) -> dict[str, str]:
        """/proc/PID/status of a container's main process, as the node's kernel sees it: read
        from the host for our cluster (its PID from containerd), else through `kubectl exec`."""
        if self.layout is None:
            text = self.kube.kubectl("-n", namespace, "exec", pod, "--", "cat", "/proc/1/status")
            return _status_fields(text.stdout)
        tasks = subprocess.run(
            ["ctr", f"--address={self.layout.containerd_socket}", "-n", "k8s.io", "tasks", "ls"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        cid = container_id.removeprefix("containerd://")
        pids = [line.split()[1] for line in tasks.splitlines() if line.startswith(cid)]
        assert pids, f"containerd runs no task {cid}:\n{tasks}"
        return _status_fields(Path(f"/proc/{pids[0]}/status").read_text())


def _status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    workdir = tmp_path_factory.mktemp("cluster")
    bin_dir = Path(_script("build-k8s-tools.sh", timeout=BUILD_TIMEOUT_S)[-1])
    external = os.environ.get("ASRPOOL_TEST_KUBECONFIG")
    if external:
        yield ClusterUnderTest(Kube(bin_dir, Path(external), workdir), None)
        return
    images = [Path(p) for p in _script("build-images.sh", timeout=BUILD_TIMEOUT_S)]
    name = f"t{secrets.token_hex(3)}"
    try:
        layout = localcluster.up(name, bin_dir, images, workdir / "state", owner_pid=os.getpid())
    except Exception as e:
        pytest.fail(f"the local cluster did not come up ({workdir}/state/logs): {e}", False)
    try:
        subprocess.run(
            ["ctr", f"--address={layout.containerd_socket}", "-n", "k8s.io",
             "images", "tag", WORKER_IMAGE, ROLLOUT_WORKER_IMAGE],
            check=True, capture_output=True,
        )  # fmt: skip
        yield ClusterUnderTest(Kube(bin_dir, layout.kubeconfig, workdir), layout)
    finally:
        problems = localcluster.down(name, keep_logs=True)
        assert not problems, problems


def _pool_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "asrpool.dev/v1alpha1",
        "kind": "ASRPool",
        "metadata": {"name": POOL},
        "spec": {
            "model": "tiny.en",
            "aliases": ["whisper-1"],
            "replicas": 2,
            "concurrency": {"perPod": 2},
            # Two pods on a two-core node beside the control plane: small requests, a real
            # memory limit (request = limit).
            "resources": {"cpu": "250m", "memory": "1Gi"},
            "args": ["--cpu-threads", "1"],
            # One attempt per request: a pod that went away mid-request would fail it, so the
            # disruption tests see the drain itself (preStop, endpoint removal, SIGTERM),
            # not the router's retries covering for it. (With retries a SIGKILLed pod loses
            # nothing either: tests/integration/test_router_fault_matrix.py, test_compose.py.)
            "retry": {"maxAttempts": 1},
        },
    }


@pytest.fixture(scope="package")
def release(cluster: ClusterUnderTest) -> Iterator[str]:
    """The chart, installed as users install it; returns the namespace. A cluster we did not
    make is left as we found it (ours goes whole)."""
    kube = cluster.kube
    kube.helm(
        "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
        "--wait", "--timeout=240s", timeout=300,
    )  # fmt: skip
    yield NAMESPACE
    if cluster.layout is None:
        kube.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False, timeout=300)
        kube.kubectl("delete", "namespace", NAMESPACE, "--timeout=180s", check=False, timeout=240)


def pool_ready(kube: Kube, replicas: int = 2) -> bool:
    pool = kube.get(NAMESPACE, "asrpool", POOL) or {}
    status = pool.get("status") or {}
    pods = kube.pods(NAMESPACE, f"asrpool.dev/pool={POOL}")
    settled = len(pods) == replicas and all(
        not p["metadata"].get("deletionTimestamp") for p in pods
    )
    return settled and status.get("readyReplicas") == replicas


@pytest.fixture(scope="package")
def pool(cluster: ClusterUnderTest, release: str) -> str:
    kube = cluster.kube
    kube.apply(release, _pool_manifest())
    wait_for(
        f"ASRPool {POOL} with 2 ready pods",
        lambda: pool_ready(kube),
        POOL_READY_S,
        lambda: describe_pool(kube),
    )
    return POOL


def describe_pool(kube: Kube) -> str:
    return kube.describe(NAMESPACE, "pods", "-l", f"asrpool.dev/pool={POOL}")


@dataclass(frozen=True)
class Router:
    url: str  # http://127.0.0.1:PORT, a port-forward of the router Service
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def api_key(kube: Kube) -> str:
    secret = kube.get(NAMESPACE, "secret", f"{RELEASE}-router-api-key")
    return base64.b64decode(secret["data"]["api-key"]).decode()


@pytest.fixture
def router(cluster: ClusterUnderTest, pool: str) -> Iterator[Router]:
    """Per test: a port-forward follows one router pod, and `helm upgrade` replaces it."""
    with port_forward(cluster.kube, NAMESPACE, f"svc/{RELEASE}-router", 8000) as port:
        yield Router(f"http://127.0.0.1:{port}", api_key(cluster.kube))
