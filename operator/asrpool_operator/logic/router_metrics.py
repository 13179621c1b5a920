"""One router's Prometheus text → what it reports for each pool (pure).

Each router exposes, on ``/metrics`` (no API key needed), the families named in
``asrpool_contract.metric_names``: the gauges ``queue_depth{pool}`` and ``in_flight{pool,pod}``, and
the counters ``busy_slot_seconds_total{pool}`` and ``queued_seconds_total{pool}`` (integrals
of the same two levels over time). The ``pool`` label is the model name. ``parse`` reads one
page into a ``PoolSample`` per pool; the operator's load reader (``load.py``) fetches the
pages and ``load_window.LoadHistory`` turns the samples of every router into rates.
A router too old to export the counters gives samples without them: the history then falls
back to its gauges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from asrpool_contract import metric_names as names

from .autoscale import PoolLoad

# The classic text format's parser puts a counter's ``_total`` sample in a family of its own
# name: matched by the sample's name.
_BUSY_TOTAL = names.BUSY_SLOT_SECONDS + "_total"
_QUEUED_TOTAL = names.QUEUED_SECONDS + "_total"


class MetricsError(ValueError):
    """A router's /metrics page is not Prometheus text."""


@dataclass(frozen=True)
class PoolSample:
    """What one router said about one pool at one scrape."""

    queue_depth: float = 0.0
    in_flight: float = 0.0
    # Cumulative since the router started; None from a router that does not export them.
    busy_slot_seconds: float | None = None
    queued_seconds: float | None = None
    # Attempts in flight on each pod (by the pod's name), for the pods' deletion cost.
    pods: Mapping[str, float] = field(default_factory=dict)

    @property
    def load(self) -> PoolLoad:
        return PoolLoad(in_flight=self.in_flight, queue_depth=self.queue_depth)


def parse(text: str) -> dict[str, PoolSample]:
    """One router's samples by model name."""
    queued: dict[str, float] = {}
    pods: dict[str, dict[str, float]] = {}
    counters: dict[str, dict[str, float]] = {_BUSY_TOTAL: {}, _QUEUED_TOTAL: {}}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                pool = sample.labels.get(names.POOL_LABEL)
                if pool is None:
                    continue
                value = float(sample.value)
                if family.name == names.QUEUE_DEPTH and sample.name == family.name:
                    queued[pool] = queued.get(pool, 0.0) + value
                elif family.name == names.IN_FLIGHT and sample.name == family.name:
                    pod = sample.labels.get(names.POD_LABEL, "")
                    by_pod = pods.setdefault(pool, {})
                    by_pod[pod] = by_pod.get(pod, 0.0) + value
                elif sample.name in counters:
                    into = counters[sample.name]
                    into[pool] = into.get(pool, 0.0) + value
    except ValueError as e:  # the parser's only complaint about malformed text
        raise MetricsError(str(e)) from e
    busy, waited = counters[_BUSY_TOTAL], counters[_QUEUED_TOTAL]
    return {
        pool: PoolSample(
            queue_depth=queued.get(pool, 0.0),
            in_flight=sum(pods.get(pool, {}).values()),
            busy_slot_seconds=busy.get(pool),
            queued_seconds=waited.get(pool),
            pods=pods.get(pool, {}),
        )
        for pool in sorted(queued.keys() | pods.keys() | busy.keys() | waited.keys())
    }


def total(pages: Iterable[Mapping[str, PoolSample]]) -> dict[str, PoolLoad]:
    """The load of every pool now (the gauges), over all the routers given."""
    out: dict[str, PoolLoad] = {}
    for page in pages:
        for pool, sample in page.items():
            seen = out.get(pool, PoolLoad())
            out[pool] = PoolLoad(
                in_flight=seen.in_flight + sample.in_flight,
                queue_depth=seen.queue_depth + sample.queue_depth,
            )
    return out


def pod_in_flight(pages: Iterable[Mapping[str, PoolSample]], pool: str) -> dict[str, float]:
    """Attempts in flight on each pod of ``pool``, over all the routers given."""
    out: dict[str, float] = {}
    for page in pages:
        for pod, n in (page.get(pool) or PoolSample()).pods.items():
            out[pod] = out.get(pod, 0.0) + n
    return out
