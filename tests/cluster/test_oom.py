"""A worker past its memory limit: OOM-killed by the kernel, reported by the kubelet, shown."""

from __future__ import annotations

from tests.cluster.conftest import NAMESPACE, ClusterUnderTest
from tests.cluster.kube import wait_for

NAME = "tiny-oom"


def _terminated(kube, selector: str) -> dict | None:
    for pod in kube.pods(NAMESPACE, selector):
        for status in pod["status"].get("containerStatuses", []):
            last = status.get("lastState", {}).get("terminated") or {}
            if last.get("reason") == "OOMKilled":
                return dict(last)
    return None


def _degraded(kube) -> dict | None:
    pool = kube.get(NAMESPACE, "asrpool", NAME) or {}
    for c in (pool.get("status") or {}).get("conditions", []):
        if c["type"] == "Degraded" and c["status"] == "True":
            return dict(c)
    return None


def test_a_worker_over_its_memory_limit_is_oom_killed_and_the_pool_shows_degraded(
    cluster: ClusterUnderTest, release: str
) -> None:
    kube = cluster.kube
    # tiny.en, Python and CTranslate2 need a few hundred MiB: 96 MiB cannot hold them.
    kube.apply(
        NAMESPACE,
        {
            "apiVersion": "asrpool.dev/v1alpha1",
            "kind": "ASRPool",
            "metadata": {"name": NAME},
            "spec": {
                "model": "tiny-oom",
                "replicas": 1,
                "resources": {"cpu": "100m", "memory": "96Mi"},
            },
        },
    )
    selector = f"asrpool.dev/pool={NAME}"
    try:
        # The kubelet's own report of the container's end (from containerd, which reads the
        # cgroup's OOM event): nothing here writes a pod status.
        last = wait_for(
            "the worker container to be OOMKilled",
            lambda: _terminated(kube, selector),
            240,
            lambda: kube.describe(NAMESPACE, "pods", "-l", selector),
        )
        assert last["exitCode"] == 137, last  # SIGKILL, from the kernel's OOM killer
        condition = wait_for(
            "the pool to show Degraded",
            lambda: _degraded(kube),
            120,
            lambda: str(kube.get(NAMESPACE, "asrpool", NAME)),
        )
        assert condition["reason"] == "OOMKilled", condition
        pool = kube.get(NAMESPACE, "asrpool", NAME)
        assert (pool["status"].get("readyReplicas") or 0) == 0
    finally:
        # Gone before the next test, so the router serves one pool again.
        kube.kubectl("-n", NAMESPACE, "delete", "asrpool", NAME, "--timeout=120s", check=False)
        wait_for("the pool's pods to go", lambda: not kube.pods(NAMESPACE, selector), 120)
