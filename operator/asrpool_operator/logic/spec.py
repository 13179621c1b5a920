"""An ASRPool object → a validated, fully defaulted ``Pool`` (pure).

``parse_pool(obj, defaults)`` is the only way in. The spec is read by the one model of it,
``asrpool_contract.pool_spec`` (shared with the router): every field gets the CRD's default and
every CRD rule is checked again, so an object the API server did not default or validate — one
read from a file, or stored before a field or rule existed — means the same thing and cannot
reach the manifests. Here come on top what the CRD's spec does not say: the pool's name must
fit its Service's, and what the operator fills in (its worker image where spec.image is empty,
its worker token Secret). Problems come back together in one ``SpecError``, each naming its
field the way ``kubectl`` does (``spec.concurrency.perPod: must be at most 64``).

Called by the reconciler before it builds manifests, and by the autoscaler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asrpool_contract.pool_spec import (
    SERVER_OPENAI,
    Autoscaling,
    PoolSpec,
    SpecError,
    is_quantity,
    read_spec,
)

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "PLURAL",
    "SERVER_OPENAI",
    "WORKER_UID",
    "Autoscaling",
    "OperatorDefaults",
    "Pool",
    "PoolRef",
    "PoolSpec",
    "SpecError",
    "is_quantity",
    "parse_pool",
]

API_GROUP = "asrpool.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ASRPool"
PLURAL = "asrpools"

# The worker image runs as this user (worker/Dockerfile); openai-compatible images use their own.
WORKER_UID = 10001

MAX_POOL_NAME = 56  # the Service is NAME-worker: a DNS label of at most 63 characters
_POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class OperatorDefaults:
    """What the operator fills in that the CRD cannot: the worker image of this release, and
    the Secret holding the token its routers show workers (None: workers take any caller)."""

    worker_image: str = "ghcr.io/asrpool/worker:0.1.0"
    worker_token_secret: str | None = None


@dataclass(frozen=True)
class PoolRef:
    """Which ASRPool object: what owner references and events point at."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class Pool:
    ref: PoolRef
    generation: int
    spec: PoolSpec  # spec.image filled in with the operator's where the pool leaves it empty
    # Not in the CRD: the operator's --worker-token-secret (OperatorDefaults).
    worker_token_secret: str | None = None


def parse_pool(obj: Mapping[str, Any], defaults: OperatorDefaults = OperatorDefaults()) -> Pool:
    """The ASRPool object as a ``Pool``; raises ``SpecError`` listing every problem."""
    problems: list[str] = []
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    if len(name) > MAX_POOL_NAME or not _POOL_NAME.match(name):
        problems.append(
            f"metadata.name: {name!r} must be at most {MAX_POOL_NAME} characters of lowercase "
            "letters, digits and '-', starting with a letter (its Service is NAME-worker)"
        )
    raw_spec = obj.get("spec")
    if not isinstance(raw_spec, Mapping):
        raise SpecError([*problems, "spec: required"])
    try:
        spec = read_spec(raw_spec)
    except SpecError as e:
        raise SpecError([*problems, *e.problems]) from None
    if problems:
        raise SpecError(problems)
    ref = PoolRef(
        name=name, namespace=str(meta.get("namespace") or ""), uid=str(meta.get("uid") or "")
    )
    return Pool(
        ref=ref,
        generation=int(meta.get("generation") or 0),
        spec=spec.model_copy(update={"image": spec.image or defaults.worker_image}),
        worker_token_secret=defaults.worker_token_secret,
    )
