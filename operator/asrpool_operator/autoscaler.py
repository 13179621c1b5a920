"""The autoscaler's period: read the routers, decide for every autoscaled pool, carry it out.

``Autoscaler.tick()`` runs every ``--autoscale-interval`` seconds (2 s: the panic window is
6 s), in a thread of its own beside the resync. Each tick:

1. scrapes every ready router once (``load.py``) and records the pages in the load history
   (``logic.load_window``), which averages them over each pool's stable and panic windows;
2. lists the pools, and the HorizontalPodAutoscalers of their namespace (an external scaler
   makes the operator stand back: ``logic.external_scaler``);
3. for each pool with ``spec.autoscaling``: lists its pods (``logic.capacity``: ready, still
   starting, waiting for GPUs), asks ``logic.autoscale.decide``, and on a change writes
   ``spec.replicas`` through the scale subresource, as an HPA does, with an Event. Before a
   scale-down it first marks the idlest pods cheapest to delete (``logic.deletion_cost``);
4. hands the reconciler what status should say (``logic.autoscale_report``) and, when that
   changed, reconciles the pool so the status follows within the tick; the same period goes
   to the operator's /metrics (``metrics.py``).

What it remembers (recommendations, panic mode, the last change) lives here, per pool, and
is lost on restart on purpose: a fresh memory never shrinks a pool before a whole delay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .kube import HPAS, PODS, POOLS, KubeClient, KubeError
from .load import RouterLoad, RouterPages
from .logic.autoscale import Memory, Observed, ScaleDecision, decide
from .logic.autoscale_report import AutoscalerReport, LastScale, report
from .logic.capacity import capacity
from .logic.deletion_cost import DELETION_COST, cost_patches
from .logic.external_scaler import scalers_of
from .logic.labels import selector_labels
from .logic.load_window import LoadHistory
from .logic.router_metrics import total
from .logic.spec import Autoscaling, OperatorDefaults, Pool, SpecError, parse_pool
from .logic.status import format_time
from .metrics import OperatorMetrics
from .reconcile import Reconciler, utcnow

log = logging.getLogger(__name__)

Key = tuple[str, str]


class Autoscaler:
    def __init__(
        self,
        kube: KubeClient,
        reconciler: Reconciler,
        defaults: OperatorDefaults,
        *,
        namespace: str | None = None,
        router_load: RouterLoad | None = None,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._reconciler = reconciler
        self._defaults = defaults
        self._namespace = namespace
        self._router_load = router_load
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._history = LoadHistory()
        self._memory: dict[Key, Memory] = {}
        self._last_scale: dict[Key, LastScale] = {}
        self._reports: dict[Key, AutoscalerReport] = {}
        self._hpa_warned = False

    def tick(self) -> None:
        """One period; a pool's API error is logged and the others go on."""
        now = self._monotonic()
        pools = []
        for obj in self._kube.list(POOLS, self._namespace):
            try:
                pools.append(parse_pool(obj, self._defaults))
            except SpecError:
                continue  # reconcile reports it
        scraped = self._scrape(now, pools)
        autoscaled = [p for p in pools if p.spec.autoscaling is not None]
        hpas = self._hpas() if autoscaled else {}
        seen: set[Key] = set()
        for pool in autoscaled:
            key = (pool.ref.namespace, pool.ref.name)
            seen.add(key)
            try:
                self._pool(pool, now, scraped, hpas.get(pool.ref.namespace, []))
            except KubeError as e:
                log.warning("%s/%s: autoscaling: %s", *key, e)
        for key in (set(self._memory) | set(self._reports)) - seen:
            # Deleted, or no longer autoscaled: forget it.
            self._memory.pop(key, None)
            self._last_scale.pop(key, None)
            if self._metrics is not None:
                self._metrics.forget(*key)
            if self._reports.pop(key, None) is not None:
                self._reconciler.set_report(*key, None)

    # --- one pool

    def _pool(
        self, pool: Pool, now: float, scraped: RouterPages | None, hpas: list[dict[str, Any]]
    ) -> None:
        policy = pool.spec.autoscaling
        assert policy is not None  # the caller's filter
        key = (pool.ref.namespace, pool.ref.name)
        external = scalers_of(hpas, pool.ref.name)
        pods = self._kube.list(PODS, pool.ref.namespace, selector_labels(pool.ref.name))
        gpu = pool.spec.resources.gpu_resource_name
        counted = capacity(pods, gpu)
        if not policy.enabled or external:
            self._memory.pop(key, None)  # someone else scales: start afresh when it stops
            rep = report(
                enabled=policy.enabled,
                replicas=pool.spec.replicas,
                decision=None,
                pods=counted,
                gpu_resource=gpu,
                external=external,
                last_scale=self._last_scale.get(key),
            )
            if self._metrics is not None:
                self._metrics.observe(pool, rep, None, None)
            self._publish(pool, rep)
            return
        observed = self._observed(pool, policy, scraped)
        decision = decide(
            policy,
            pool.spec.concurrency.per_pod,
            pool.spec.replicas,
            counted,
            observed,
            self._memory.get(key, Memory()),
            now,
        )
        self._memory[key] = decision.memory
        if decision.replicas != pool.spec.replicas:
            self._scale(pool, decision, pods)
        else:
            log.debug("%s/%s: %s", *key, decision.message)
        rep = report(
            enabled=True,
            replicas=decision.replicas,
            decision=decision,
            pods=counted,
            gpu_resource=gpu,
            missing=observed.missing if observed else (),
            last_scale=self._last_scale.get(key),
        )
        if self._metrics is not None:
            self._metrics.observe(pool, rep, decision, observed)
        self._publish(pool, rep)

    def _scale(self, pool: Pool, decision: ScaleDecision, pods: list[dict[str, Any]]) -> None:
        ns, name = pool.ref.namespace, pool.ref.name
        if decision.replicas < pool.spec.replicas:
            # First make the idlest pods the cheapest to delete, then lower replicas.
            in_flight = self._history.pods(pool.spec.model)
            for pod, cost in cost_patches(pods, in_flight).items():
                body = {"metadata": {"annotations": {DELETION_COST: cost}}}
                self._kube.patch(PODS, ns, pod, body)
        self._kube.scale(POOLS, ns, name, decision.replicas)
        log.info("%s/%s: %s", ns, name, decision.message)
        self._reconciler.post_event(pool.ref, "Normal", decision.reason, decision.message)
        self._last_scale[(ns, name)] = LastScale(
            format_time(self._clock()), decision.reason, decision.message
        )

    def _publish(self, pool: Pool, rep: AutoscalerReport) -> None:
        key = (pool.ref.namespace, pool.ref.name)
        if self._reports.get(key) == rep:
            return
        self._reports[key] = rep
        self._reconciler.set_report(*key, rep)
        self._reconciler.reconcile(*key)  # the status follows now, not at the next resync

    # --- the load

    def _scrape(self, now: float, pools: list[Pool]) -> RouterPages | None:
        if self._router_load is None:
            return None
        scraped = self._router_load.read()
        namespace = self._router_load.target.namespace
        if scraped is None:
            self._reconciler.set_loads(namespace, None)
            return None
        horizon = max(
            (p.spec.autoscaling.stable_window_s for p in pools if p.spec.autoscaling),
            default=60,
        )
        self._history.record(now, scraped.pages, scraped.missing, horizon_s=horizon + 60)
        self._reconciler.set_loads(namespace, total(scraped.pages.values()))
        return scraped

    def _observed(
        self, pool: Pool, policy: Autoscaling, scraped: RouterPages | None
    ) -> Observed | None:
        if scraped is None or self._router_load is None or not scraped.pages:
            return None  # no router answered: the load is unknown, not zero
        if pool.ref.namespace != self._router_load.target.namespace:
            return None  # those routers serve their own namespace only
        model = pool.spec.model
        panic_s = policy.panic_window_s or policy.stable_window_s
        return Observed(
            stable=self._history.window(model, policy.stable_window_s),
            panic=self._history.window(model, panic_s),
            latest=self._history.latest(model),
            missing=scraped.missing,
        )

    def _hpas(self) -> Mapping[str, list[dict[str, Any]]]:
        """The HPAs of the watched namespace(s), by namespace; none when we may not list them
        (an older chart's Role): then nothing is refused."""
        try:
            items = self._kube.list(HPAS, self._namespace)
        except KubeError as e:
            if not self._hpa_warned:
                log.warning("cannot list HorizontalPodAutoscalers (%s): external scalers unseen", e)
                self._hpa_warned = True
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        for hpa in items:
            out.setdefault(str(hpa["metadata"]["namespace"]), []).append(hpa)
        return out
