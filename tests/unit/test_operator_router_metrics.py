"""The routers' /metrics pages → each pool's load, summed over router replicas."""

from __future__ import annotations

import pytest

from asrpool_operator.logic.autoscale import PoolLoad
from asrpool_operator.logic.router_metrics import MetricsError, parse, total

PAGE = """\
# HELP asrpool_router_queue_depth Requests waiting.
# TYPE asrpool_router_queue_depth gauge
asrpool_router_queue_depth{pool="large-v3"} 5.0
asrpool_router_queue_depth{pool="tiny.en"} 0.0
# HELP asrpool_router_in_flight Attempts running on each pod.
# TYPE asrpool_router_in_flight gauge
asrpool_router_in_flight{pod="10.0.0.7:9000",pool="large-v3"} 4.0
asrpool_router_in_flight{pod="10.0.0.8:9000",pool="large-v3"} 3.0
asrpool_router_in_flight{pod="10.0.0.9:9000",pool="tiny.en"} 1.0
# HELP asrpool_router_requests_total Client requests by pool and final code.
# TYPE asrpool_router_requests_total counter
asrpool_router_requests_total{code="ok",pool="large-v3"} 120.0
"""


def test_one_router_page_gives_in_flight_and_queue_per_pool() -> None:
    assert parse(PAGE) == {
        "large-v3": PoolLoad(in_flight=7.0, queue_depth=5.0),
        "tiny.en": PoolLoad(in_flight=1.0, queue_depth=0.0),
    }


def test_a_router_without_pools_reports_nothing() -> None:
    assert parse("# nothing here\n") == {}


def test_pools_add_up_over_router_replicas() -> None:
    other = {"large-v3": PoolLoad(in_flight=1.0, queue_depth=2.0), "base": PoolLoad(2.0, 0.0)}
    assert total([parse(PAGE), other]) == {
        "large-v3": PoolLoad(in_flight=8.0, queue_depth=7.0),
        "tiny.en": PoolLoad(in_flight=1.0, queue_depth=0.0),
        "base": PoolLoad(in_flight=2.0, queue_depth=0.0),
    }


def test_text_that_is_not_prometheus_is_an_error() -> None:
    with pytest.raises(MetricsError):
        parse('asrpool_router_queue_depth{pool="x" 1\n')
