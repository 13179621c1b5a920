"""The test control plane itself: the versions we pinned, auth as configured, objects stored,
and the garbage collector at work (what the operator's owner references will rely on)."""

from __future__ import annotations

import json
import time

import httpx

from tests.k8s.conftest import pinned_version
from tests.k8s.controlplane import ControlPlane

GC_TIMEOUT_S = 60


def test_apiserver_version_endpoint_reports_the_pinned_release(
    control_plane: ControlPlane,
) -> None:
    version = pinned_version("K8S")
    with control_plane.client() as api:
        info = api.get("/version").json()
    assert info["gitVersion"] == version
    assert (info["major"], info["minor"]) == tuple(version.removeprefix("v").split(".")[:2])


def test_kubectl_reports_the_pinned_client_version(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("version", "--client", "-o", "json").stdout
    assert json.loads(out)["clientVersion"]["gitVersion"] == pinned_version("K8S")


def test_kubectl_lists_the_default_namespace(control_plane: ControlPlane) -> None:
    names = control_plane.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/default" in names
    assert "namespace/kube-system" in names


def test_unknown_token_is_rejected_and_anonymous_is_forbidden(control_plane: ControlPlane) -> None:
    url = f"{control_plane.url}/api/v1/namespaces"
    verify = control_plane.tls()
    bad = httpx.get(url, verify=verify, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    anonymous = httpx.get(url, verify=verify)
    assert anonymous.status_code == 403  # RBAC: system:anonymous may not list namespaces


def test_configmap_is_stored_and_read_back(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl(
        "-n", namespace, "create", "configmap", "settings",
        "--from-literal=model=tiny.en", "--from-literal=per-pod=4",
    )  # fmt: skip
    got = json.loads(
        control_plane.kubectl("-n", namespace, "get", "configmap", "settings", "-o", "json").stdout
    )
    assert got["data"] == {"model": "tiny.en", "per-pod": "4"}
    with control_plane.client() as api:
        raw = api.get(f"/api/v1/namespaces/{namespace}/configmaps/settings")
    assert raw.status_code == 200
    assert raw.json()["metadata"]["uid"] == got["metadata"]["uid"]


def _configmap_exists(cp: ControlPlane, namespace: str, name: str) -> bool:
    result = cp.kubectl("-n", namespace, "get", "configmap", name, "-o", "name", check=False)
    if result.returncode == 0:
        return True
    assert "NotFound" in result.stderr, result.stderr  # any other error is a failure, not "gone"
    return False


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    cp.kubectl("-n", namespace, "create", "configmap", "owner")
    owner_uid = cp.kubectl(
        "-n", namespace, "get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}"
    ).stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
        "data": {"k": "v"},
    }
    cp.kubectl("create", "-f", "-", input=json.dumps(dependent))
    # An unowned neighbour shows the collector removes dependents, not everything.
    cp.kubectl("-n", namespace, "create", "configmap", "bystander")
    assert _configmap_exists(cp, namespace, "dependent")

    cp.kubectl("-n", namespace, "delete", "configmap", "owner", "--cascade=background")

    deadline = time.monotonic() + GC_TIMEOUT_S
    while _configmap_exists(cp, namespace, "dependent"):
        assert time.monotonic() < deadline, (
            f"dependent still there {GC_TIMEOUT_S}s after its owner was deleted; "
            f"controller-manager log:\n{cp.logs().get('kube-controller-manager', '')}"
        )
        time.sleep(0.5)
    assert _configmap_exists(cp, namespace, "bystander")


def test_helm_reports_its_version_and_reaches_the_cluster(control_plane: ControlPlane) -> None:
    version = control_plane.helm("version", "--short").stdout.strip()
    assert version.startswith(pinned_version("HELM") + "+") or version == pinned_version("HELM")
    releases = control_plane.helm("list", "--all-namespaces", "-o", "json").stdout
    assert json.loads(releases) == []
