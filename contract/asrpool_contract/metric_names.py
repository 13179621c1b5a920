"""The names of the router's metrics that the operator reads: one home for both sides.

The router exports these on ``/metrics`` (``asrpool_router.metrics``); the operator's
autoscaler parses them by name (``asrpool_operator.logic.router_metrics``). A test reads the
real router's page and parses it with the operator's parser, so a rename on one side alone
fails there, not in a cluster.

Every family is labelled by ``pool`` (the model name clients send); ``IN_FLIGHT`` also by
``pod`` (the pod's name in Kubernetes, its URL for static backends). The two counters are
integrals over time, so any reader can take a rate over the window it wants (the operator:
its stable and panic windows) without sampling faster than the routers change.

Pure constants: no imports.
"""

from __future__ import annotations

# Gauges: the state at scrape time.
QUEUE_DEPTH = "asrpool_router_queue_depth"  # {pool}: requests waiting for a slot
IN_FLIGHT = "asrpool_router_in_flight"  # {pool, pod}: attempts running on each pod

# Counters (the exported sample has the ``_total`` suffix): cumulative since the router started.
BUSY_SLOT_SECONDS = "asrpool_router_busy_slot_seconds"  # {pool}: ∫ slots in flight dt
QUEUED_SECONDS = "asrpool_router_queued_seconds"  # {pool}: ∫ queue depth dt

POOL_LABEL = "pool"
POD_LABEL = "pod"
