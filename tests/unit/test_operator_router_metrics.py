"""The routers' /metrics pages → what each says per pool, and the sums over router replicas."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from asrpool_operator.logic.autoscale import PoolLoad
from asrpool_operator.logic.router_metrics import (
    MetricsError,
    PoolSample,
    parse,
    pod_in_flight,
    total,
)
from asrpool_router.app import create_app
from asrpool_router.logic.pool import Priority
from asrpool_router.settings import RouterSettings

PAGE = """\
# HELP asrpool_router_queue_depth Requests waiting.
# TYPE asrpool_router_queue_depth gauge
asrpool_router_queue_depth{pool="large-v3"} 5.0
asrpool_router_queue_depth{pool="tiny.en"} 0.0
# HELP asrpool_router_in_flight Attempts running on each pod.
# TYPE asrpool_router_in_flight gauge
asrpool_router_in_flight{pod="large-v3-worker-a",pool="large-v3"} 4.0
asrpool_router_in_flight{pod="large-v3-worker-b",pool="large-v3"} 3.0
asrpool_router_in_flight{pod="tiny-worker-c",pool="tiny.en"} 1.0
# HELP asrpool_router_busy_slot_seconds Slot-seconds in flight.
# TYPE asrpool_router_busy_slot_seconds counter
asrpool_router_busy_slot_seconds_total{pool="large-v3"} 812.5
asrpool_router_busy_slot_seconds_total{pool="tiny.en"} 3.0
# HELP asrpool_router_queued_seconds Request-seconds waiting.
# TYPE asrpool_router_queued_seconds counter
asrpool_router_queued_seconds_total{pool="large-v3"} 96.0
asrpool_router_queued_seconds_total{pool="tiny.en"} 0.0
# HELP asrpool_router_requests_total Client requests by pool and final code.
# TYPE asrpool_router_requests_total counter
asrpool_router_requests_total{code="ok",pool="large-v3"} 120.0
"""


def test_one_router_page_gives_gauges_counters_and_pods_per_pool() -> None:
    assert parse(PAGE) == {
        "large-v3": PoolSample(
            queue_depth=5.0,
            in_flight=7.0,
            busy_slot_seconds=812.5,
            queued_seconds=96.0,
            pods={"large-v3-worker-a": 4.0, "large-v3-worker-b": 3.0},
        ),
        "tiny.en": PoolSample(
            queue_depth=0.0,
            in_flight=1.0,
            busy_slot_seconds=3.0,
            queued_seconds=0.0,
            pods={"tiny-worker-c": 1.0},
        ),
    }


def test_a_router_without_the_counters_gives_samples_without_them() -> None:
    old = "\n".join(line for line in PAGE.splitlines() if "_seconds" not in line) + "\n"
    sample = parse(old)["large-v3"]
    assert (sample.busy_slot_seconds, sample.queued_seconds) == (None, None)
    assert sample.load == PoolLoad(in_flight=7.0, queue_depth=5.0)


def test_a_router_without_pools_reports_nothing() -> None:
    assert parse("# nothing here\n") == {}


def test_pools_add_up_over_router_replicas() -> None:
    other = {
        "large-v3": PoolSample(in_flight=1.0, queue_depth=2.0, pods={"large-v3-worker-a": 1.0}),
        "base": PoolSample(in_flight=2.0),
    }
    assert total([parse(PAGE), other]) == {
        "large-v3": PoolLoad(in_flight=8.0, queue_depth=7.0),
        "tiny.en": PoolLoad(in_flight=1.0, queue_depth=0.0),
        "base": PoolLoad(in_flight=2.0, queue_depth=0.0),
    }
    assert pod_in_flight([parse(PAGE), other], "large-v3") == {
        "large-v3-worker-a": 5.0,
        "large-v3-worker-b": 3.0,
    }


def test_text_that_is_not_prometheus_is_an_error() -> None:
    with pytest.raises(MetricsError):
        parse('asrpool_router_queue_depth{pool="x" 1\n')


def test_the_operator_reads_what_the_real_router_exports() -> None:
    """One seam, one home: the router's own /metrics page, read by the operator's parser."""
    app = create_app(RouterSettings(auth=False, per_pod=1))
    state = app.state.router
    runner = state.pools.ensure("tiny.en")
    start = runner.clock()
    runner.upsert_pod("tiny-worker-a", "http://10.0.0.7:9000")
    # White-box: a slot held and a ticket waiting with no event loop (and no pod) to serve them.
    pool = runner._pool
    pool.submit(audio_seconds=1.0, priority=Priority.INTERACTIVE, now=start)  # in flight
    pool.submit(audio_seconds=1.0, priority=Priority.INTERACTIVE, now=start)  # queued
    with TestClient(app) as client:
        time.sleep(0.05)
        page = client.get("/metrics").text
    elapsed = time.monotonic() - start
    sample = parse(page)["tiny.en"]
    assert (sample.in_flight, sample.queue_depth) == (1.0, 1.0)
    assert sample.pods == {"tiny-worker-a": 1.0}
    # Integrated up to the scrape: one slot and one ticket held since the start.
    assert sample.busy_slot_seconds is not None
    assert 0.05 <= sample.busy_slot_seconds <= elapsed
    assert sample.queued_seconds == pytest.approx(sample.busy_slot_seconds)
