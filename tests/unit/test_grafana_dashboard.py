"""The chart's Grafana dashboard as a file: valid PromQL, a layout Grafana can lay out, legends
that name labels the queries keep. (Whether the metrics exist is checked against the real
processes in tests/k8s/test_grafana_dashboard.py.)"""

from __future__ import annotations

import itertools
import re

import pytest

from tests.support import grafana

DASHBOARD = grafana.load()
QUERIES = grafana.queries(DASHBOARD)


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.where}: {q.expr[:60]}" for q in QUERIES])
def test_every_query_is_promql_over_our_metrics(query: grafana.Query) -> None:
    found = grafana.selectors(query.expr)
    assert found, query
    assert all(s.metric.startswith(("asrpool_router_", "asrpool_worker_", "asrpool_operator_"))
               for s in found), found  # fmt: skip


def test_there_is_a_query_for_each_view_the_issue_asks_for() -> None:
    metrics = {s.metric for q in QUERIES for s in grafana.selectors(q.expr)}
    for wanted in (
        "asrpool_router_requests_total",  # requests/s
        "asrpool_router_request_seconds_bucket",  # p50/p95 latency
        "asrpool_router_queue_depth_by_priority",  # the queue by class
        "asrpool_router_oom_total",
        "asrpool_router_retries_total",  # failovers
        "asrpool_router_pod_budget",
        "asrpool_router_in_flight",
        "asrpool_router_pod_ejected",
        "asrpool_router_sessions_open",
        "asrpool_worker_decode_seconds_bucket",  # decode time
        "asrpool_worker_audio_seconds_total",  # RTF's denominator
        "asrpool_worker_memory_reserved_mb",
        "asrpool_operator_autoscale_decisions_total",
        "asrpool_operator_autoscale_replicas",
    ):
        assert wanted in metrics, wanted


def test_panels_tile_the_grid_without_overlapping() -> None:
    panels = grafana.panels(DASHBOARD)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        boxes.append((g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"], p["title"]))
    for a, b in itertools.combinations(boxes, 2):
        overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        assert not overlap, (a[4], b[4])


def test_every_panel_reads_the_chosen_data_source_and_legends_name_kept_labels() -> None:
    (source,) = [v for v in DASHBOARD["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    for p in grafana.panels(DASHBOARD):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p.get("description"), p["title"]  # a hover text says what it shows
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            kept = set().union(*(s.labels for s in grafana.selectors(t["expr"])))
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")):
                assert label in kept, (p["title"], label, t["expr"])


def test_the_variables_filter_every_pool_query() -> None:
    names = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert {"datasource", "namespace", "pool"} <= names
    for q in QUERIES:
        if q.where.startswith("variable"):
            continue
        for s in grafana.selectors(q.expr):
            assert "namespace" in s.labels, (q.where, s)
            if s.metric != "asrpool_router_sessions_open":  # sessions belong to no pool
                assert "pool" in s.labels, (q.where, s)
