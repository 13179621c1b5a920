"""Makes one pool's children and status match its spec; the resync that keeps doing it.

``Reconciler.reconcile(namespace, name)`` is level-triggered and idempotent: it reads the
pool, asks the pure core what the children should be (``logic.manifests``) and whether each
needs a write (``logic.plan``), applies only those, reads the worker Deployment and pods,
computes the status (``logic.status``) and patches it only when it changed, then posts the
Events the change deserves. Calling it twice, or after a restart, writes nothing. The watch
handlers (``handlers.py``) call it on every event of a pool, its Deployment or its pods; a
per-pool lock keeps two threads from interleaving on one pool.

``sweep()`` runs every resync period: it reads the routers' load once (``load.py``), lets the
autoscaler (``logic.autoscale``) set ``spec.replicas`` of pools that ask for it, through the
scale subresource as an HPA would, and reconciles every pool, which repairs whatever a lost
watch event left behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .kube import (
    DEPLOYMENTS,
    EVENTS,
    PODS,
    POOLS,
    KubeClient,
    KubeError,
    NotFound,
    resource_of,
)
from .load import RouterLoad
from .logic.autoscale import PoolLoad, Recommendation, decide
from .logic.labels import child_name, selector_string
from .logic.manifests import children, event
from .logic.plan import Action, plan_child
from .logic.spec import OperatorDefaults, Pool, PoolRef, SpecError, parse_pool
from .logic.status import (
    Diagnosis,
    Observation,
    format_time,
    pool_status,
    status_events,
    status_patch,
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        defaults: OperatorDefaults,
        *,
        namespace: str | None = None,
        router_load: RouterLoad | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._defaults = defaults
        self._namespace = namespace
        self._router_load = router_load
        self._clock = clock
        self._monotonic = monotonic
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._history: dict[tuple[str, str], tuple[Recommendation, ...]] = {}
        # The latest load by model, for the routers' namespace; replaced whole by each sweep.
        self._loads: dict[str, PoolLoad] | None = None

    # --- one pool

    def reconcile(self, namespace: str, name: str) -> None:
        with self._lock(namespace, name):
            obj = self._kube.get(POOLS, namespace, name)
            if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
                return  # gone, or going: the garbage collector removes the children
            try:
                self._reconcile(obj)
            except NotFound:
                # Deleted while we worked (the pool, or its namespace): nothing left to do.
                log.debug("%s/%s: gone during reconcile", namespace, name)

    def forget(self, namespace: str, name: str) -> None:
        """The pool was deleted: drop what we kept in memory for it."""
        self._history.pop((namespace, name), None)
        with self._locks_guard:
            self._locks.pop((namespace, name), None)

    def _reconcile(self, obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        previous = obj.get("status") or {}
        try:
            pool = parse_pool(obj, self._defaults)
        except SpecError as e:
            replicas = (obj.get("spec") or {}).get("replicas")
            obs = Observation(
                generation=int(meta.get("generation") or 0),
                desired_replicas=replicas if isinstance(replicas, int) else 0,
                deployment=self._kube.get(DEPLOYMENTS, namespace, child_name(name)),
                problem=Diagnosis("InvalidSpec", str(e)),
            )
            self._write_status(obj, obs, previous)
            return

        deployment: Mapping[str, Any] | None = None
        problem: Diagnosis | None = None
        for desired in children(pool):
            res = resource_of(desired)
            actual = self._kube.get(res, namespace, desired["metadata"]["name"])
            plan = plan_child(desired, actual, pool.ref)
            live = actual
            if plan.action in (Action.CREATE, Action.UPDATE):
                live = self._kube.apply(desired)
                log.info("%s/%s: %s", namespace, name, plan.why)
                reason = "Created" if plan.action is Action.CREATE else "Updated"
                self._event(pool.ref, "Normal", reason, plan.why)
            elif plan.action is Action.CONFLICT:
                problem = problem or Diagnosis("NameConflict", plan.why)
                live = None
            if desired["kind"] == "Deployment":
                deployment = live
        pods = self._kube.list(PODS, namespace, selector_string(name))
        obs = Observation(
            generation=pool.generation,
            desired_replicas=pool.spec.replicas,
            deployment=deployment,
            pods=pods,
            load=self._load_for(pool),
            problem=problem,
            gpu_resource_name=pool.spec.resources.gpu_resource_name,
        )
        self._write_status(obj, obs, previous)

    def _write_status(
        self, obj: Mapping[str, Any], obs: Observation, previous: Mapping[str, Any]
    ) -> None:
        meta = obj["metadata"]
        new = pool_status(obs, meta["name"], previous, self._clock())
        patch = status_patch(previous, new)
        if patch is None:
            return
        self._kube.patch_status(POOLS, meta["namespace"], meta["name"], patch)
        ref = PoolRef(meta["name"], meta["namespace"], str(meta.get("uid") or ""))
        for ev in status_events(previous, new):
            self._event(ref, ev.type, ev.reason, ev.message)

    def _load_for(self, pool: Pool) -> PoolLoad | None:
        loads = self._loads
        if loads is None or self._router_load is None:
            return None
        if pool.ref.namespace != self._router_load.target.namespace:
            return None  # those routers serve their own namespace only
        return loads.get(pool.spec.model, PoolLoad())

    # --- every pool, every period

    def sweep(self) -> None:
        """Read the load, autoscale, and reconcile every pool; one pool's error is logged and
        the others go on."""
        if self._router_load is not None:
            self._loads = self._router_load.read()
        pools = self._kube.list(POOLS, self._namespace)
        seen = set()
        for obj in pools:
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            seen.add(key)
            try:
                self._autoscale(obj)
                self.reconcile(*key)
            except KubeError as e:
                log.warning("%s/%s: %s", *key, e)
        for key in set(self._history) - seen:
            del self._history[key]

    def _autoscale(self, obj: Mapping[str, Any]) -> None:
        try:
            pool = parse_pool(obj, self._defaults)
        except SpecError:
            return  # reconcile reports it
        policy = pool.spec.autoscaling
        if policy is None:
            return
        key = (pool.ref.namespace, pool.ref.name)
        decision = decide(
            policy,
            pool.spec.concurrency.per_pod,
            pool.spec.replicas,
            self._load_for(pool),
            self._history.get(key, ()),
            self._monotonic(),
        )
        self._history[key] = decision.history
        if decision.replicas != pool.spec.replicas:
            self._kube.scale(POOLS, pool.ref.namespace, pool.ref.name, decision.replicas)
            log.info("%s/%s: %s", *key, decision.message)
            self._event(pool.ref, "Normal", decision.reason, decision.message)

    # --- helpers

    def _event(self, ref: PoolRef, type_: str, reason: str, message: str) -> None:
        body = event(ref, type_, reason, message, format_time(self._clock()))
        try:
            self._kube.create(EVENTS, ref.namespace, body)
        except KubeError as e:  # an Event is worth a try, never a failed reconcile
            log.warning("%s/%s: event %s not posted: %s", ref.namespace, ref.name, reason, e)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())
