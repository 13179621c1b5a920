"""What the kubelet made of the chart and the pool: real containers, as the manifests say."""

from __future__ import annotations

import base64
import json
import textwrap
from typing import Any

from tests.cluster.conftest import APP_VERSION, NAMESPACE, POOL, RELEASE, ClusterUnderTest
from tests.cluster.kube import Kube, wait_for

WORKER_UID = "10001"


def _main_container(pod: dict) -> dict:
    (status,) = pod["status"]["containerStatuses"]
    return status


def test_worker_pods_run_in_containerd_as_non_root_and_locked_down(
    cluster: ClusterUnderTest, pool: str
) -> None:
    kube = cluster.kube
    (node,) = kube.get("", "nodes")["items"]
    pods = kube.pods(NAMESPACE, f"asrpool.dev/pool={pool}")
    assert len(pods) == 2
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] == node["metadata"]["name"]
        status = _main_container(pod)
        assert status["containerID"].startswith("containerd://"), status
        assert status["ready"] and status["started"], status
        proc = cluster.process_status(NAMESPACE, name, status["containerID"])
        # The kernel's view of the worker process: the securityContext, really applied.
        assert proc["Uid"].split() == [WORKER_UID] * 4, proc
        assert proc["Gid"].split() == [WORKER_UID] * 4, proc
        assert int(proc["CapEff"], 16) == 0 and int(proc["CapBnd"], 16) == 0, proc
        assert proc["NoNewPrivs"] == "1", proc  # allowPrivilegeEscalation: false
        assert proc["Seccomp"] == "2", proc  # RuntimeDefault: a seccomp filter
        # A read-only root filesystem with /tmp writable.
        probe = kube.kubectl(
            "-n", NAMESPACE, "exec", name, "--", "sh", "-c",
            "touch /opt/x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp-writable",
        ).stdout  # fmt: skip
        assert probe.split() == ["tmp-writable"], probe


def test_worker_readiness_comes_from_the_kubelet_probing_readyz(
    cluster: ClusterUnderTest, pool: str
) -> None:
    kube = cluster.kube
    for pod in kube.pods(NAMESPACE, f"asrpool.dev/pool={pool}"):
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"
        # The kubelet's own count of its readiness probes of this pod (its /metrics/probes,
        # through the API server): it asked /readyz and got a success. Not the worker's
        # access log: probes are kept out of it by default.
        assert _successful_readiness_probes(kube, pod) >= 1


def _successful_readiness_probes(kube: Kube, pod: dict[str, Any]) -> float:
    node, name = pod["spec"]["nodeName"], pod["metadata"]["name"]
    text = kube.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/probes").stdout
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prober_probe_total{") and all(
            label in line
            for label in (f'pod="{name}"', 'probe_type="Readiness"', 'result="successful"')
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_operator_and_the_router_run_as_pods_from_our_images(
    cluster: ClusterUnderTest, release: str
) -> None:
    kube = cluster.kube
    for component in ("operator", "router"):  # the chart runs two routers, one operator
        pods = kube.pods(NAMESPACE, f"app.kubernetes.io/component={component}")
        assert len(pods) == (2 if component == "router" else 1), [p["metadata"] for p in pods]
        for pod in pods:
            status = _main_container(pod)
            assert status["image"].endswith(f"asrpool/{component}:{APP_VERSION}"), status
            assert status["imageID"], status  # resolved by containerd, not pulled
        assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
        assert status["containerID"].startswith("containerd://") and status["ready"], status
        proc = cluster.process_status(NAMESPACE, pod["metadata"]["name"], status["containerID"])
        assert proc["Uid"].split()[0] == WORKER_UID, proc


# From inside a pod: urllib, the status of each call on one line.
_CALLS = textwrap.dedent(
    """
    import sys, urllib.error, urllib.request
    base, token = sys.argv[1], sys.argv[2]
    for path, data in (("/v1/models", None), ("/v1/audio/transcriptions", b"x")):
        for auth in ("", token):
            req = urllib.request.Request(base + path, data=data)
            if auth:
                req.add_header("Authorization", "Bearer " + auth)
            try:
                status = urllib.request.urlopen(req, timeout=10).status
            except urllib.error.HTTPError as e:
                status = e.code
            print(path, "token" if auth else "none", status)
    """
)


def test_a_direct_call_to_a_worker_pod_without_the_routers_credential_is_refused(
    cluster: ClusterUnderTest, pool: str
) -> None:
    """Any pod can reach a worker's address (the bridge CNI enforces no NetworkPolicy); without
    the token the routers send, the worker answers 401."""
    kube = cluster.kube
    intruder = "intruder"
    kube.apply(
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": intruder, "labels": {"app": "intruder"}},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 20000},
                "containers": [
                    {
                        "name": "shell",
                        "image": f"ghcr.io/asrpool/router:{APP_VERSION}",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", "-c", "import time; time.sleep(900)"],
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    }
                ],
            },
        },
    )
    try:
        wait_for(
            "the intruder pod to run",
            lambda: (
                (kube.get(NAMESPACE, "pod", intruder) or {}).get("status", {}).get("phase")
                == "Running"
            ),
            120,
            lambda: kube.describe(NAMESPACE, "pod", intruder),
        )
        secret = kube.get(NAMESPACE, "secret", f"{RELEASE}-worker-token")
        token = base64.b64decode(secret["data"]["token"]).decode()
        worker = kube.pods(NAMESPACE, f"asrpool.dev/pool={POOL}")[0]
        base = f"http://{worker['status']['podIP']}:9000"
        out = kube.kubectl(
            "-n", NAMESPACE, "exec", intruder, "--", "python3", "-c", _CALLS, base, token
        ).stdout
        got = {tuple(line.split()[:2]): int(line.split()[2]) for line in out.splitlines()}
        assert got[("/v1/models", "none")] == 401, out
        assert got[("/v1/audio/transcriptions", "none")] == 401, out
        # The same calls with the routers' token get through: it is the credential that
        # decides, not the network.
        assert got[("/v1/models", "token")] == 200, out
        assert got[("/v1/audio/transcriptions", "token")] in (400, 415), out  # not audio
    finally:
        kube.kubectl("-n", NAMESPACE, "delete", "pod", intruder, "--wait=false", check=False)


def test_the_worker_token_reaches_the_router_and_the_workers_from_one_secret(
    cluster: ClusterUnderTest, pool: str
) -> None:
    kube = cluster.kube
    routers = kube.pods(NAMESPACE, "app.kubernetes.io/component=router")
    worker = kube.pods(NAMESPACE, f"asrpool.dev/pool={pool}")[0]
    secret = f"{RELEASE}-worker-token"
    for pod in (*routers, worker):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["worker-token"]["secret"]["secretName"] == secret, json.dumps(volumes)
