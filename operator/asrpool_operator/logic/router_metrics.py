"""The routers' Prometheus text → each pool's load (pure).

Each router exposes, on ``/metrics`` (no API key needed), ``asrpool_router_queue_depth{pool}``
and ``asrpool_router_in_flight{pool,pod}``; the ``pool`` label is the model name. Routers share
nothing, so a pool's load is the sum over every router replica: ``parse`` reads one router's
page, ``total`` adds the pages up. The operator's load reader (``load.py``) fetches the pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from .autoscale import PoolLoad

QUEUE_DEPTH = "asrpool_router_queue_depth"
IN_FLIGHT = "asrpool_router_in_flight"


class MetricsError(ValueError):
    """A router's /metrics page is not Prometheus text."""


def parse(text: str) -> dict[str, PoolLoad]:
    """One router's load by model name."""
    in_flight: dict[str, float] = {}
    queued: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name not in (QUEUE_DEPTH, IN_FLIGHT):
                continue
            into = queued if family.name == QUEUE_DEPTH else in_flight
            for sample in family.samples:
                pool = sample.labels.get("pool")
                if pool is not None and sample.name == family.name:
                    into[pool] = into.get(pool, 0.0) + float(sample.value)
    except ValueError as e:  # the parser's only complaint about malformed text
        raise MetricsError(str(e)) from e
    return {
        pool: PoolLoad(in_flight=in_flight.get(pool, 0.0), queue_depth=queued.get(pool, 0.0))
        for pool in sorted(in_flight.keys() | queued.keys())
    }


def total(pages: Iterable[Mapping[str, PoolLoad]]) -> dict[str, PoolLoad]:
    """The load of every pool over all routers."""
    out: dict[str, PoolLoad] = {}
    for page in pages:
        for pool, load in page.items():
            seen = out.get(pool, PoolLoad())
            out[pool] = PoolLoad(
                in_flight=seen.in_flight + load.in_flight,
                queue_depth=seen.queue_depth + load.queue_depth,
            )
    return out
