"""Fake GPU nodes on the test control plane: Node objects that KWOK keeps alive.

``gpu_nodes(cp, workdir, {"gpu-a": 2, "gpu-b": 2})`` creates the Nodes, each advertising that
many ``nvidia.com/gpu`` (so the real kube-scheduler places worker pods on them, and says
``Insufficient nvidia.com/gpu`` when they are full), starts ``kwok`` (built by
``scripts/build-k8s-tools.sh``) to initialize them and renew their leases, as a kubelet
would, and removes both on exit. KWOK runs with node stages only (``kwok-stages.yaml``): it
leaves pods alone, and ``pod_runner.py`` plays their kubelet with real worker processes.

The nodes carry the taint ``asrpool.dev/kwok=true:NoSchedule``: only pods that tolerate it
(the test's pool) land there, never a Pending pod that another test left behind.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.k8s.controlplane import ControlPlane, Daemon

HERE = Path(__file__).resolve().parent
LABEL = "asrpool.dev/kwok"
TAINT = {"key": LABEL, "value": "true", "effect": "NoSchedule"}
TOLERATION = {"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}
GPU = "nvidia.com/gpu"


@contextlib.contextmanager
def gpu_nodes(
    cp: ControlPlane, workdir: Path, gpus: Mapping[str, int], timeout: float = 60.0
) -> Iterator[list[str]]:
    """The named nodes, each with its GPUs, Ready once KWOK has initialized them."""
    names = sorted(gpus)
    if not (cp.bin / "kwok").exists():
        raise RuntimeError(
            f"no kwok in {cp.bin}: scripts/build-k8s-tools.sh builds it (a failed build is "
            "recorded in stamps/kwok.failed; delete that file to try again)"
        )
    try:
        for name in names:
            cp.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {LABEL: "true", "type": "kwok"},
                             "annotations": {"kwok.x-k8s.io/node": "fake"}},
                "spec": {"taints": [TAINT]},
            }))  # fmt: skip
            resources = {"cpu": "32", "memory": "256Gi", "pods": "110", GPU: str(gpus[name])}
            # KWOK keeps what status already says it has (its stage template reads it).
            cp.kubectl(
                "patch", "node", name, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"capacity": resources, "allocatable": resources}}),
            )  # fmt: skip
        kwok = Daemon(
            "kwok",
            [
                str(cp.bin / "kwok"),
                f"--kubeconfig={cp.kubeconfig}",
                f"--config={HERE / 'kwok-stages.yaml'}",
                f"--manage-nodes-with-label-selector={LABEL}=true",
                "--node-lease-duration-seconds=40",
            ],
            workdir / "kwok.log",
        )
        try:
            _wait_ready(cp, names, kwok, timeout)
            yield names
        finally:
            kwok.stop()
    finally:
        for name in names:
            cp.kubectl("delete", "node", name, "--wait=false", check=False)


def _wait_ready(cp: ControlPlane, names: list[str], kwok: Daemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        out = cp.kubectl("get", "nodes", *names, "-o", "json").stdout
        ready = {
            n["metadata"]["name"]
            for n in json.loads(out)["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
            and not any(
                t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints", [])
            )
        }
        if ready == set(names):
            return
        if kwok.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"KWOK nodes not ready ({sorted(ready)}):\n{kwok.log_tail()}")
        time.sleep(0.5)
