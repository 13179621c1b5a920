"""The chart's Grafana dashboard against what the real processes export.

The dashboard is read from the chart as Helm renders it (the ConfigMap for Grafana's
sidecar), every query parsed as PromQL (``tests/support/grafana.py``). The metric names come
from the processes themselves, not from a list here: a real worker and a real router before
it, driven so that their labelled families have series (an OOM answer and its retry, a
permanent error), and the operator, reading that router's load for an autoscaled pool, on
its ``--metrics-port``. Every selector must name a series the processes export; where they
export samples, every label it matches or groups by must be theirs, or one the chart's
ServiceMonitor/PodMonitors give the series (the Prometheus Operator's target labels, and the
workers' ``pool`` relabeling, read from the rendered PodMonitor).
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Clip
from tests.k8s.controlplane import ControlPlane
from tests.k8s.test_chart import render
from tests.k8s.test_operator import OperatorProcess, _node, _now, apply, install_crd
from tests.support import grafana
from tests.support.procs import ONE_DECODE_FITS, free_port, router, worker

# What the Prometheus Operator adds to every series it scrapes (target labels).
TARGET_LABELS = frozenset(
    {"namespace", "pod", "container", "service", "endpoint", "instance", "job"}
)
# Sample names of a family, by its type: what Prometheus stores for it.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "untyped": ("",),
}


def exported(text: str) -> dict[str, set[str] | None]:
    """Series name → the label names its samples carry (None: declared, no sample yet)."""
    out: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            out.setdefault(family.name + suffix, None)
        for sample in family.samples:
            seen = out.get(sample.name)
            out[sample.name] = (seen or set()) | set(sample.labels)
    return out


def relabeled(monitor: dict[str, Any]) -> set[str]:
    """The labels a ServiceMonitor's or PodMonitor's relabelings add to every series."""
    endpoints = monitor["spec"].get("podMetricsEndpoints") or monitor["spec"]["endpoints"]
    return {r["targetLabel"] for e in endpoints for r in e.get("relabelings") or []}


def scrape(url: str) -> str:
    resp = httpx.get(url + "/metrics", timeout=10)
    resp.raise_for_status()
    return resp.text


def test_every_dashboard_query_reads_series_the_router_worker_and_operator_export(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, speech: dict[str, Clip]
) -> None:
    cp = control_plane
    docs = render(
        cp,
        "grafana.dashboard.enabled=true",
        "podMonitor.enabled=true",
        "serviceMonitor.enabled=true",
    )
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    dashboard = json.loads(configmap["data"]["asrpool.json"])
    monitors = {
        d["metadata"]["name"]: d for d in docs if d["kind"] in ("PodMonitor", "ServiceMonitor")
    }
    added = {
        "router": relabeled(monitors["rel-asrpool-router"]),
        "worker": relabeled(monitors["rel-asrpool-workers"]),
        "operator": relabeled(monitors["rel-asrpool-operator"]),
    }

    pages: dict[str, str] = {}
    with (
        # Two slots, memory for one decode: the second request meets the memory guard.
        worker(tmp_path, *ONE_DECODE_FITS, "--slots", "2") as w,
        router(tmp_path, [w.url], "--per-pod", "2") as r,
    ):
        # Two at once on a pod that fits one decode: an OOM answer, a retry, then both done.
        clip = speech["long"]
        post = lambda path: httpx.post(  # noqa: E731
            f"{r.url}/v1/audio/transcriptions", files={"file": (path.name, path.read_bytes())},
            timeout=180,
        )  # fmt: skip
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            answers = list(ex.map(post, [clip.path, clip.path]))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        # A permanent error from the pod: gave up, not retried. (An undecodable file would
        # not do: the router refuses it itself, before any pod.) The pool's English-only
        # model refuses German.
        german = httpx.post(
            f"{r.url}/v1/audio/transcriptions",
            files={"file": (clip.path.name, clip.path.read_bytes())},
            data={"language": "de"},
            timeout=180,
        )
        assert german.status_code == 400, german.text
        model = httpx.get(f"{r.url}/stats").json()["pools"][0]["model"]

        # The operator, reading this router's load for an autoscaled pool of its model.
        install_crd(cp)
        node = f"grafana-{namespace}"
        _node(cp, node)
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
        metrics_port = free_port()
        op = OperatorProcess(
            cp.kubeconfig, namespace, tmp_path / "operator.log",
            "--router-selector", "app.kubernetes.io/component=router",
            "--router-metrics-port", str(r.port), "--metrics-port", str(metrics_port),
        )  # fmt: skip
        op.start()
        try:
            apply(cp, namespace, {
                "apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool",
                "metadata": {"name": "grafana"},
                "spec": {"model": model, "replicas": 1,
                         "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
            })  # fmt: skip
            operator_url = f"http://127.0.0.1:{metrics_port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    text = scrape(operator_url)
                except httpx.HTTPError:
                    text = ""
                if (
                    'window="stable"' in text
                    and "asrpool_operator_autoscale_decisions_total{" in text
                ):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"no autoscaler series after 60 s:\n{text}\n{op.tail()}")
            pages["operator"] = text
        finally:
            op.stop()
            cp.kubectl("delete", "node", node, "--wait=false", check=False)
        pages["router"] = scrape(r.url)
        pages["worker"] = scrape(w.url)

    series = {who: exported(text) for who, text in pages.items()}
    problems, name_only = [], set()
    for query in grafana.queries(dashboard):
        for sel in grafana.selectors(query.expr):
            owners = [who for who in series if sel.metric in series[who]]
            if not owners:
                problems.append(f"{query.where}: {sel.metric} is exported by no process")
                continue
            for who in owners:
                labels = series[who][sel.metric]
                if labels is None:
                    name_only.add(sel.metric)
                    continue
                missing = sel.labels - labels - TARGET_LABELS - added[who]
                if missing:
                    problems.append(f"{query.where}: {sel.metric} has no label {sorted(missing)}")
    assert not problems, "\n".join(problems)
    # Only families that need a rare event (an ejection, an engine reload after lone CUDA
    # OOMs) may go unchecked for labels: their names are still the processes' own.
    assert name_only <= {
        "asrpool_router_ejections_total",
        "asrpool_worker_engine_reloads_total",
    }, name_only
