"""What the router should serve, derived from ASRPool objects and their EndpointSlices.

The Kubernetes discovery shell keeps the latest ASRPools and EndpointSlices of its
namespace (as the API server's plain dicts) and calls ``pool_views`` after every
change; the answer says, per model, the pool's policy and its endpoints. The shell
then upserts and removes pods so the router follows: a new ready endpoint gets
work at once, a terminating or vanished one gets none.

A pool's spec is read by the model the operator reads it with
(``asrpool_contract.pool_spec``): the same defaults, the same validation; a pool whose
spec fails it is not served.

EndpointSlices are tied to their pool by the label ``asrpool.dev/pool`` (the
operator puts it on the pool's headless Service; the EndpointSlice controller
copies Service labels onto its slices).

Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asrpool_contract.pool_spec import PoolSpec, Realtime, read_spec
from asrpool_contract.wire import OPENAI_DEFAULT_MODEL

from .chunking import ChunkingPolicy
from .pool import PoolPolicy

POOL_LABEL = "asrpool.dev/pool"
DEFAULT_POOL_ANNOTATION = "asrpool.dev/default-pool"
WORKER_PORT_NAME = "http"


@dataclass(frozen=True)
class Endpoint:
    pod_id: str
    url: str
    ready: bool
    terminating: bool


@dataclass(frozen=True)
class PoolView:
    name: str  # the ASRPool's name
    model: str  # what clients send
    policy: PoolPolicy
    endpoints: tuple[Endpoint, ...]
    default: bool = False
    aliases: tuple[str, ...] = ()  # other names clients may send (e.g. whisper-1)
    chunking: ChunkingPolicy = field(default_factory=ChunkingPolicy)  # spec.realtime


def pool_policy(spec: PoolSpec) -> PoolPolicy:
    """The router's knobs for a pool, from its spec."""
    c, r, e = spec.concurrency, spec.retry, spec.retry.ejection
    return PoolPolicy(
        per_pod=c.per_pod,
        max_queue=c.max_queue,
        queue_timeout_s=c.queue_timeout_s,
        cold_start_timeout_s=c.cold_start_timeout_s,
        request_timeout_s=r.request_timeout_s,
        max_attempts=r.max_attempts,
        breaker_failures=e.consecutive_failures,
        breaker_cooldown_s=e.base_ejection_s,
        breaker_max_cooldown_s=e.max_ejection_s,
        max_ejection_percent=e.max_ejection_percent,
    )


def realtime_policy(realtime: Realtime) -> ChunkingPolicy:
    """Live chunking from a pool's ``spec.realtime``."""
    return ChunkingPolicy(
        silence_duration_ms=realtime.silence_duration_ms,
        max_utterance_ms=realtime.max_chunk_ms,
        partial_interval_ms=realtime.partial_interval_ms,
    )


def endpoints_of(endpoint_slice: dict[str, Any]) -> list[Endpoint]:
    """The worker endpoints one EndpointSlice lists (IPv6 addresses bracketed)."""
    ports = endpoint_slice.get("ports") or []
    port = next((p.get("port") for p in ports if p.get("name") == WORKER_PORT_NAME), None)
    if port is None and len(ports) == 1:
        port = ports[0].get("port")
    if port is None:
        return []
    ipv6 = endpoint_slice.get("addressType") == "IPv6"
    out = []
    for ep in endpoint_slice.get("endpoints") or []:
        addresses = ep.get("addresses") or []
        if not addresses:
            continue
        host = f"[{addresses[0]}]" if ipv6 else addresses[0]
        url = f"http://{host}:{port}"
        conditions = ep.get("conditions") or {}
        target = ep.get("targetRef") or {}
        terminating = bool(conditions.get("terminating", False))
        # Kubernetes: a missing ready condition means ready; terminating endpoints are never.
        ready = conditions.get("ready") is not False and not terminating
        out.append(Endpoint(target.get("name") or url, url, ready, terminating))
    return out


def pool_views(
    asrpools: dict[str, dict[str, Any]], slices: dict[str, dict[str, Any]]
) -> dict[str, PoolView]:
    """model → view, for every live ASRPool (one being deleted serves no more)."""
    by_pool: dict[str, list[Endpoint]] = {}
    for s in slices.values():
        pool = ((s.get("metadata") or {}).get("labels") or {}).get(POOL_LABEL)
        if pool:
            by_pool.setdefault(pool, []).extend(endpoints_of(s))
    views: dict[str, PoolView] = {}
    for name in sorted(asrpools):
        obj = asrpools[name]
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        try:
            spec = read_spec(obj.get("spec"))
            policy, chunking = pool_policy(spec), realtime_policy(spec.realtime)
        except ValueError:  # a SpecError, or a policy the router cannot run
            continue  # the API server validates pools: only one stored before a rule existed
        if spec.model in views:
            continue  # a second pool for the same model is ignored; the first name wins
        endpoints = {e.pod_id: e for e in by_pool.get(name, [])}
        views[spec.model] = PoolView(
            name=name,
            model=spec.model,
            policy=policy,
            endpoints=tuple(endpoints[k] for k in sorted(endpoints)),
            default=(meta.get("annotations") or {}).get(DEFAULT_POOL_ANNOTATION) == "true",
            aliases=spec.aliases,
            chunking=chunking,
        )
    return views


def default_model(views: dict[str, PoolView]) -> str | None:
    """The pool ``whisper-1`` goes to: the one annotated default, else the one that lists
    ``whisper-1`` among its aliases, else the first by name."""
    for chosen in (
        [v for v in views.values() if v.default],
        [v for v in views.values() if OPENAI_DEFAULT_MODEL in v.aliases],
        list(views.values()),
    ):
        if chosen:
            return min(chosen, key=lambda v: v.name).model
    return None


def aliases(views: dict[str, PoolView]) -> dict[str, str]:
    """alias → model; a name that is some pool's model, or claimed twice, is no alias."""
    claimed: dict[str, list[str]] = {}
    for view in views.values():
        for alias in view.aliases:
            claimed.setdefault(alias, []).append(view.model)
    return {
        alias: models[0]
        for alias, models in claimed.items()
        if len(models) == 1 and alias not in views and alias != OPENAI_DEFAULT_MODEL
    }
