"""Makes one pool's children and status match its spec; the resync that keeps doing it.

``Reconciler.reconcile(namespace, name)`` is level-triggered and idempotent: it reads the
pool, asks the pure core what the children should be (``logic.manifests``) and whether each
needs a write (``logic.plan``), applies only those, reads the worker Deployment and pods,
computes the status (``logic.status``) and patches it only when it changed, then posts the
Events the change deserves. Calling it twice, or after a restart, writes nothing. The watch
handlers (``handlers.py``) call it on every event of a pool, its Deployment or its pods; a
per-pool lock keeps two threads from interleaving on one pool.

``sweep()`` runs every resync period and reconciles every pool, which repairs whatever a lost
watch event left behind. The autoscaler (``autoscaler.py``, its own faster period) hands in
what status should say about the load (``set_loads``) and about itself (``set_report``).
"""

from __future__ import annotations

import logging
import threading
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
from .logic.autoscale import PoolLoad
from .logic.autoscale_report import AutoscalerReport
from .logic.labels import child_name, selector_labels
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
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._kube = kube
        self._defaults = defaults
        self._namespace = namespace
        self._clock = clock
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # The latest load by model in the routers' namespace, replaced whole by the autoscaler.
        self._loads: tuple[str, dict[str, PoolLoad]] | None = None
        self._reports: dict[tuple[str, str], AutoscalerReport] = {}

    def set_loads(self, namespace: str, loads: dict[str, PoolLoad] | None) -> None:
        """The routers of ``namespace`` report these loads by model (None: unknown)."""
        self._loads = None if loads is None else (namespace, loads)

    def set_report(self, namespace: str, name: str, report: AutoscalerReport | None) -> None:
        """What the pool's status should say about its autoscaler from now on."""
        if report is None:
            self._reports.pop((namespace, name), None)
        else:
            self._reports[(namespace, name)] = report

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
        self._reports.pop((namespace, name), None)
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
        pods = self._kube.list(PODS, namespace, selector_labels(name))
        obs = Observation(
            generation=pool.generation,
            desired_replicas=pool.spec.replicas,
            deployment=deployment,
            pods=pods,
            load=self._load_for(pool),
            problem=problem,
            gpu_resource_name=pool.spec.resources.gpu_resource_name,
            autoscaled=pool.spec.autoscaling is not None,
            autoscaler=self._reports.get((namespace, name)),
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
        if self._loads is None:
            return None
        namespace, loads = self._loads
        if pool.ref.namespace != namespace:
            return None  # those routers serve their own namespace only
        return loads.get(pool.spec.model, PoolLoad())

    # --- every pool, every period

    def sweep(self) -> None:
        """Reconcile every pool; one pool's error is logged and the others go on."""
        for obj in self._kube.list(POOLS, self._namespace):
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            try:
                self.reconcile(*key)
            except KubeError as e:
                log.warning("%s/%s: %s", *key, e)

    # --- helpers

    def post_event(self, ref: PoolRef, type_: str, reason: str, message: str) -> None:
        """An Event on the pool (the autoscaler's ScaledUp/ScaledDown too)."""
        self._event(ref, type_, reason, message)

    def _event(self, ref: PoolRef, type_: str, reason: str, message: str) -> None:
        body = event(ref, type_, reason, message, format_time(self._clock()))
        try:
            self._kube.create(EVENTS, ref.namespace, body)
        except KubeError as e:  # an Event is worth a try, never a failed reconcile
            log.warning("%s/%s: event %s not posted: %s", ref.namespace, ref.name, reason, e)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())
