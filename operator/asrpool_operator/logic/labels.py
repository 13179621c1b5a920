"""Names and labels of the objects the operator creates for a pool (pure).

One place, because three parties read them: the manifests set them, the operator's watches
select on them, and the chart's NetworkPolicy and the router (through the Service's
EndpointSlices, which copy the Service's labels) find worker pods by them.
"""

from __future__ import annotations

from collections.abc import Mapping

MANAGED_BY = "asrpool-operator"  # the field manager too: who wrote what, in managedFields
POOL_LABEL = "asrpool.dev/pool"
SPEC_HASH_ANNOTATION = "asrpool.dev/spec-hash"
MODEL_ANNOTATION = "asrpool.dev/model"
WORKER_CONTAINER = "worker"

# Selects every object and pod the operator manages (its watches filter on it server-side).
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


def child_name(pool: str) -> str:
    """The Deployment, Service and PodDisruptionBudget of pool ``pool`` are all NAME-worker."""
    return f"{pool}-worker"


def selector_labels(pool: str) -> dict[str, str]:
    """The labels the Deployment selects pods by: immutable once created, so few and stable."""
    return {
        "app.kubernetes.io/part-of": "asrpool",
        "app.kubernetes.io/component": "worker",
        POOL_LABEL: pool,
    }


def labels(pool: str) -> dict[str, str]:
    """Every label of the pool's objects and pods."""
    return {
        "app.kubernetes.io/name": "asrpool-worker",
        "app.kubernetes.io/instance": pool,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector_labels(pool),
    }


def selector_string(pool: str) -> str:
    """``selector_labels`` as a label selector string (``status.selector``)."""
    return format_selector(selector_labels(pool))


def format_selector(match_labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def parse_selector(selector: str) -> dict[str, str]:
    """``format_selector``'s inverse (``==`` taken too): the labels a list call selects by.
    ValueError for anything else (``!=``, ``in``, bare keys): they would select other pods."""
    labels = {}
    for term in selector.split(","):
        key, equals, value = (s.strip() for s in term.partition("="))
        if not equals or not key or key.endswith("!"):
            raise ValueError(f"not a key=value[,key=value] label selector: {selector!r}")
        labels[key] = value.removeprefix("=").strip()
    return labels
