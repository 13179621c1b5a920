"""Starts the operator: kopf's watches, the periodic resync and the autoscaler, in one loop.

``run(namespace, ...)`` is what ``asrpool operator`` calls; ``serve(settings)`` takes the
settings object instead. Everything is built here, once, and passed in: the API client, the
router load reader, the reconciler, the autoscaler, kopf's registry and settings. kopf
handles SIGTERM and SIGINT; when it returns, the periodic tasks stop too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import kopf
from prometheus_client import CollectorRegistry, start_http_server

from .autoscaler import Autoscaler
from .handlers import build_registry
from .kube import KubeClient
from .load import RouterLoad, RouterTarget
from .logic.labels import MANAGED_SELECTOR, parse_selector
from .logic.spec import OperatorDefaults
from .metrics import OperatorMetrics
from .reconcile import Reconciler
from .settings import OperatorSettings

log = logging.getLogger(__name__)


def run(
    namespace: str | None,
    *,
    worker_image: str = OperatorDefaults.worker_image,
    worker_token_secret: str | None = None,
    router_selector: str | None = None,
    router_namespace: str | None = None,
    router_metrics_port: int = 8000,
    resync_seconds: float = 15.0,
    autoscale_seconds: float = 2.0,
    liveness_port: int | None = 8080,
    metrics_port: int | None = None,
) -> None:
    """Run the operator until SIGTERM/SIGINT.

    namespace: watch ASRPools in this namespace only (a Role is enough), or None for all.
    worker_image: the image of pools that leave spec.image empty.
    worker_token_secret: the Secret our worker pods mount and whose token they require.
    router_selector: label selector (key=value[,key=value]) of the router pods whose /metrics
        give each pool's load (autoscaling, status.queueDepth); None reads no load.
    router_namespace: where those routers run (default: namespace).
    router_metrics_port: the routers' HTTP port.
    resync_seconds: how often to re-check every pool.
    autoscale_seconds: how often to read the routers and autoscale.
    liveness_port: port of the /healthz endpoint for the pod's liveness probe; None for none.
    metrics_port: port of the operator's Prometheus /metrics; None for none.
    """
    router = None
    if router_selector:
        where = router_namespace or namespace
        if not where:
            raise ValueError("--router-selector needs --router-namespace when watching all")
        labels = parse_selector(router_selector)
        router = RouterTarget(namespace=where, labels=labels, port=router_metrics_port)
    serve(
        OperatorSettings(
            namespace=namespace,
            defaults=OperatorDefaults(
                worker_image=worker_image, worker_token_secret=worker_token_secret
            ),
            router=router,
            resync_s=resync_seconds,
            autoscale_s=autoscale_seconds,
            liveness_port=liveness_port,
            metrics_port=metrics_port,
        )
    )


def serve(settings: OperatorSettings) -> None:
    _quiet_chatty_loggers()
    asyncio.run(_operate(settings))


def _quiet_chatty_loggers() -> None:
    """httpx2 logs every API call (lightkube's transport), httpx every router scrape and kopf
    every handler's success at INFO: at the default level that buries what the operator
    decided. DEBUG still shows them."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx2", "httpx", "kopf.objects"):
            logging.getLogger(name).setLevel(logging.WARNING)


def kopf_settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    # One replica (the Deployment's strategy is Recreate): no peering objects, no kopf.dev
    # CRDs, no RBAC for them.
    s.peering.standalone = True
    # No dynamic discovery of CRDs and namespaces: it needs cluster-wide list/watch rights.
    s.scanning.disabled = True
    # We post our own Events; kopf's would repeat every handler log line on the pods.
    s.posting.enabled = False
    # Watch only what we manage, filtered by the API server, not in this process.
    s.watching.label_selectors["apps", "deployments"] = MANAGED_SELECTOR
    s.watching.label_selectors["v1", "pods"] = MANAGED_SELECTOR
    return s


async def _operate(settings: OperatorSettings) -> None:
    kube = KubeClient.from_config()
    router_load = RouterLoad(kube, settings.router) if settings.router else None
    reconciler = Reconciler(kube, settings.defaults, namespace=settings.namespace)
    metrics = OperatorMetrics(CollectorRegistry())
    autoscaler = Autoscaler(
        kube,
        reconciler,
        settings.defaults,
        namespace=settings.namespace,
        router_load=router_load,
        metrics=metrics,
    )
    # prometheus_client's own server, in a thread: kopf's liveness endpoint serves /healthz only.
    exporter = (
        start_http_server(settings.metrics_port, registry=metrics.registry)[0]
        if settings.metrics_port
        else None
    )
    # Created before kopf starts, so kopf counts them as not its own and leaves them alone.
    periodic = [
        asyncio.create_task(_every(settings.resync_s, reconciler.sweep, "resync")),
        asyncio.create_task(_every(settings.autoscale_s, autoscaler.tick, "autoscaling")),
    ]
    liveness = (
        f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    )
    try:
        await kopf.operator(
            registry=build_registry(reconciler),
            settings=kopf_settings(),
            standalone=True,
            clusterwide=settings.namespace is None,
            namespaces=[settings.namespace] if settings.namespace else (),
            liveness_endpoint=liveness,
        )
    finally:
        for task in periodic:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if router_load is not None:
            router_load.close()
        if exporter is not None:
            exporter.shutdown()
        kube.close()


async def _every(period_s: float, work: Callable[[], None], what: str) -> None:
    """``work`` in a thread every ``period_s`` seconds (the API calls are sync)."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await asyncio.to_thread(work)
        except Exception:  # the loop must outlive any one bad period; the log says what broke
            log.exception("%s failed", what)
