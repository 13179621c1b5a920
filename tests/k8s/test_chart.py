"""The Helm chart: lint, render, install into the test API server, and run the operator with
exactly the RBAC the chart grants it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.controlplane import ControlPlane
from tests.k8s.test_operator import OperatorProcess, get, install_crd, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "asrpool"
KUBE_VERSION = "1.37.0"  # `helm template` has no cluster to ask; the chart needs >= 1.30


def render(cp: ControlPlane, *sets: str) -> list[dict[str, Any]]:
    args = [a for s in sets for a in ("--set", s)]
    out = cp.helm(
        "template", "rel", str(CHART), "-n", "speech", "--kube-version", KUBE_VERSION, *args
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d["metadata"]["name"])
    return out


def test_helm_lint_is_clean(control_plane: ControlPlane) -> None:
    r = control_plane.helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in r.stdout
    assert "[WARNING]" not in r.stdout and "[ERROR]" not in r.stdout


def test_values_outside_the_schema_are_refused(control_plane: ControlPlane) -> None:
    r = control_plane.helm(
        "lint", "--strict", str(CHART), "--set", "operator.scope=everywhere", check=False
    )
    assert r.returncode != 0
    assert "at '/operator/scope': value must be one of 'namespace', 'cluster'" in r.stdout


def test_default_render_has_one_template_per_resource(control_plane: ControlPlane) -> None:
    got = kinds(render(control_plane))
    assert got == {
        "NetworkPolicy": ["rel-asrpool-workers"],
        "ServiceAccount": ["rel-asrpool-operator", "rel-asrpool-router"],
        "Secret": ["rel-asrpool-router-api-key"],
        "Role": ["rel-asrpool-operator", "rel-asrpool-router"],
        "RoleBinding": ["rel-asrpool-operator", "rel-asrpool-router"],
        "Service": ["rel-asrpool-router"],
        "Deployment": ["rel-asrpool-operator", "rel-asrpool-router"],
        "PodDisruptionBudget": ["rel-asrpool-router"],
        "Pod": ["rel-asrpool-router-test-readyz"],
    }


def test_two_routers_by_default_spread_over_nodes_and_kept_by_a_budget(
    control_plane: ControlPlane,
) -> None:
    docs = render(control_plane)
    (router,) = [d for d in docs if d["kind"] == "Deployment" and "router" in d["metadata"]["name"]]
    assert router["spec"]["replicas"] == 2
    spread = router["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = spread["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = router["spec"]["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": labels}}
    hard = render(control_plane, "router.antiAffinity=hard")
    (router,) = [d for d in hard if d["kind"] == "Deployment" and "router" in d["metadata"]["name"]]
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution"
        in (router["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"])
    )
    # One router: no budget that would block every node drain.
    assert "PodDisruptionBudget" not in kinds(render(control_plane, "router.replicas=1"))


def test_switches_turn_resources_on_and_off(control_plane: ControlPlane) -> None:
    got = kinds(
        render(
            control_plane,
            "serviceMonitor.enabled=true",
            "podMonitor.enabled=true",
            "grafana.dashboard.enabled=true",
            "networkPolicy.enabled=false",
            "operator.scope=cluster",
            "router.apiKey.existingSecret=my-keys",
        )
    )
    assert got["ServiceMonitor"] == ["rel-asrpool-router"]
    assert sorted(got["PodMonitor"]) == ["rel-asrpool-operator", "rel-asrpool-workers"]
    assert got["ConfigMap"] == ["rel-asrpool-grafana-dashboard"]
    assert "NetworkPolicy" not in got and "Secret" not in got
    assert got["ClusterRole"] == ["rel-asrpool-operator"]
    assert got["ClusterRoleBinding"] == ["rel-asrpool-operator"]
    assert kinds(render(control_plane, "router.enabled=false", "operator.enabled=false")) == {
        "NetworkPolicy": ["rel-asrpool-workers"]
    }


def _doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_the_grafana_dashboard_is_a_configmap_for_the_sidecar(control_plane: ControlPlane) -> None:
    docs = render(
        control_plane,
        "grafana.dashboard.enabled=true",
        "grafana.dashboard.namespace=monitoring",
        "grafana.dashboard.annotations.grafana_folder=Speech",
    )
    cm = _doc(docs, "ConfigMap", "rel-asrpool-grafana-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's default label
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Speech"}
    # The file the chart ships, byte for byte, and JSON Grafana can load.
    shipped = (CHART / "dashboards" / "asrpool.json").read_text()
    assert cm["data"]["asrpool.json"] == shipped.rstrip("\n")
    assert json.loads(cm["data"]["asrpool.json"])["uid"] == "asrpool-pools"


def test_pod_monitors_label_worker_series_with_their_model_and_keep_the_operators(
    control_plane: ControlPlane,
) -> None:
    docs = render(control_plane, "podMonitor.enabled=true", "serviceMonitor.enabled=true")
    workers = _doc(docs, "PodMonitor", "rel-asrpool-workers")["spec"]
    assert workers["selector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "asrpool",
        "app.kubernetes.io/component": "worker",
    }
    assert workers["namespaceSelector"] == {"matchNames": ["speech"]}
    (endpoint,) = workers["podMetricsEndpoints"]
    assert endpoint["port"] == "http"  # the worker container's port name (logic/manifests.py)
    assert endpoint["relabelings"] == [
        {
            "sourceLabels": ["__meta_kubernetes_pod_annotation_asrpool_dev_model"],
            "targetLabel": "pool",
        }
    ]
    operator = _doc(docs, "PodMonitor", "rel-asrpool-operator")["spec"]
    assert operator["podMetricsEndpoints"][0]["honorLabels"] is True
    op = _container(docs, "rel-asrpool-operator")
    assert "--metrics-port=9090" in op["args"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in op["ports"]
    router = _doc(docs, "ServiceMonitor", "rel-asrpool-router")["spec"]
    assert router["endpoints"][0]["honorLabels"] is True
    # Without the operator's metrics port there is nothing to scrape there.
    off = kinds(render(control_plane, "podMonitor.enabled=true", "operator.metricsPort=0"))
    assert off["PodMonitor"] == ["rel-asrpool-workers"]
    cluster = render(control_plane, "podMonitor.enabled=true", "operator.scope=cluster")
    assert _doc(cluster, "PodMonitor", "rel-asrpool-workers")["spec"]["namespaceSelector"] == {
        "any": True
    }


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def test_the_router_runs_in_kubernetes_mode_and_the_operator_reads_its_load(
    control_plane: ControlPlane,
) -> None:
    docs = render(control_plane)
    router = _container(docs, "rel-asrpool-router")
    assert router["image"] == "ghcr.io/asrpool/router:0.1.0"
    assert router["command"] + router["args"][:4] == [
        "asrpool", "router", "--kubernetes", "--namespace=speech", "--host=0.0.0.0",
    ]  # fmt: skip
    op = _container(docs, "rel-asrpool-operator")
    assert op["image"] == "ghcr.io/asrpool/operator:0.1.0"
    assert "--worker-image=ghcr.io/asrpool/worker:0.1.0" in op["args"]
    assert (
        "--router-selector=app.kubernetes.io/name=asrpool,app.kubernetes.io/instance=rel,"
        "app.kubernetes.io/component=router"
    ) in op["args"]
    for c in (router, op):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_network_policy_admits_only_the_router_to_worker_pods(
    control_plane: ControlPlane,
) -> None:
    (policy,) = [d for d in render(control_plane) if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "asrpool",
        "app.kubernetes.io/component": "worker",
    }
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "asrpool",
                            "app.kubernetes.io/instance": "rel",
                            "app.kubernetes.io/component": "router",
                        }
                    }
                }
            ]
        }
    ]


def test_names_are_cut_to_63_characters(control_plane: ControlPlane) -> None:
    docs = render(control_plane, f"fullnameOverride={'x' * 62}-")  # suffixes push past 63
    names = {d["metadata"]["name"] for d in docs}
    assert names and all(len(n) <= 63 and not n.endswith("-") for n in names)


# --- installed into the test API server


def _api_key(cp: ControlPlane, namespace: str) -> str:
    secret = get(cp, namespace, "secret", "rel-asrpool-router-api-key")
    assert secret is not None
    return base64.b64decode(secret["data"]["api-key"]).decode()


@pytest.fixture
def release(control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    """Release ``rel`` in the test's namespace; uninstalled after, so the cluster (shared by
    the session) lists no leftover releases."""
    install_crd(control_plane)  # helm installs crds/ only when absent; the CRD is shared
    control_plane.helm("install", "rel", str(CHART), "-n", namespace)
    yield namespace
    control_plane.helm("uninstall", "rel", "-n", namespace, check=False)


def test_helm_install_creates_the_operator_router_and_their_rbac(
    control_plane: ControlPlane, release: str
) -> None:
    cp, ns = control_plane, release
    for what in (
        ("deployment", "rel-asrpool-operator"),
        ("deployment", "rel-asrpool-router"),
        ("service", "rel-asrpool-router"),
        ("serviceaccount", "rel-asrpool-operator"),
        ("serviceaccount", "rel-asrpool-router"),
        ("role", "rel-asrpool-operator"),
        ("rolebinding", "rel-asrpool-router"),
        ("networkpolicy", "rel-asrpool-workers"),
    ):
        assert get(cp, ns, *what) is not None, what
    assert cp.kubectl("get", "crd", "asrpools.asrpool.dev", "-o", "name").stdout.strip()
    notes = cp.helm("get", "notes", "rel", "-n", ns).stdout
    assert f"kubectl port-forward -n {ns} svc/rel-asrpool-router 8000:8000" in notes


def test_the_api_key_is_generated_once_and_kept_on_upgrade(
    control_plane: ControlPlane, release: str
) -> None:
    key = _api_key(control_plane, release)
    assert key.startswith("sk-asrpool-") and len(key) == len("sk-asrpool-") + 40
    control_plane.helm("upgrade", "rel", str(CHART), "-n", release, "--set", "router.replicas=2")
    assert _api_key(control_plane, release) == key


@pytest.mark.parametrize(
    ("who", "verb", "resource", "allowed"),
    [
        ("router", "watch", "asrpools.asrpool.dev", True),
        ("router", "list", "endpointslices.discovery.k8s.io", True),
        ("router", "patch", "asrpools.asrpool.dev", False),
        ("router", "get", "secrets", False),
        ("operator", "patch", "asrpools.asrpool.dev/status", True),
        ("operator", "patch", "asrpools.asrpool.dev/scale", True),
        ("operator", "create", "deployments.apps", True),
        ("operator", "delete", "deployments.apps", False),
        ("operator", "patch", "asrpools.asrpool.dev", False),
        ("operator", "get", "secrets", False),
        ("operator", "create", "events", True),
    ],
)
def test_rbac_grants_only_what_each_needs(
    control_plane: ControlPlane, release: str, who: str, verb: str, resource: str, allowed: bool
) -> None:
    resource, _, sub = resource.partition("/")
    r = control_plane.kubectl(
        "auth", "can-i", verb, resource, "-n", release, *([f"--subresource={sub}"] if sub else []),
        f"--as=system:serviceaccount:{release}:rel-asrpool-{who}", check=False,
    )  # fmt: skip
    assert r.stdout.strip() == ("yes" if allowed else "no")


def test_the_operator_manages_pools_with_only_the_charts_rbac(
    control_plane: ControlPlane, release: str, tmp_path: Path
) -> None:
    cp, ns = control_plane, release
    token = cp.kubectl("-n", ns, "create", "token", "rel-asrpool-operator").stdout.strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "operator-kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    kubeconfig.chmod(0o600)
    op = OperatorProcess(
        kubeconfig, ns, tmp_path / "operator.log",
        "--router-selector", "app.kubernetes.io/component=router",
    )  # fmt: skip
    op.start()
    try:
        cp.kubectl("-n", ns, "apply", "-f", str(REPO / "examples" / "02-cpu-tiny-en.yaml"))
        wait_for(
            "the pool's children and status",
            lambda: (
                get(cp, ns, "pdb", "tiny-en-worker")
                and ((get(cp, ns, "asrpool", "tiny-en") or {}).get("status") or {}).get("selector")
            ),
            log=op.tail(),
        )
        cp.kubectl("-n", ns, "scale", "asrpool/tiny-en", "--replicas=1")
        wait_for(
            "the Deployment scaled to 1",
            lambda: (get(cp, ns, "deployment", "tiny-en-worker") or {})["spec"]["replicas"] == 1,
            log=op.tail(),
        )
        assert "Forbidden" not in op.log(), op.tail()
        assert "HTTP/1.1 403" not in op.log(), op.tail()
    finally:
        op.stop()
