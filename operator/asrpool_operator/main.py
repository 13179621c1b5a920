"""Starts the operator: kopf's watches and the periodic resync, side by side in one loop.

``run(namespace, ...)`` is what ``asrpool operator`` calls; ``serve(settings)`` takes the
settings object instead. Everything is built here, once, and passed in: the API client, the
router load reader, the reconciler, kopf's registry and settings. kopf handles SIGTERM and
SIGINT; when it returns, the resync stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf

from .handlers import build_registry
from .kube import KubeClient
from .load import RouterLoad, RouterTarget
from .logic.labels import MANAGED_SELECTOR
from .logic.spec import OperatorDefaults
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
    liveness_port: int | None = 8080,
) -> None:
    """Run the operator until SIGTERM/SIGINT.

    namespace: watch ASRPools in this namespace only (a Role is enough), or None for all.
    worker_image: the image of pools that leave spec.image empty.
    worker_token_secret: the Secret our worker pods mount and whose token they require.
    router_selector: label selector of the router pods whose /metrics give each pool's load
        (autoscaling, status.queueDepth); None reads no load.
    router_namespace: where those routers run (default: namespace).
    router_metrics_port: the routers' HTTP port.
    resync_seconds: how often to autoscale and re-check every pool.
    liveness_port: port of the /healthz endpoint for the pod's liveness probe; None for none.
    """
    router = None
    if router_selector:
        where = router_namespace or namespace
        if not where:
            raise ValueError("--router-selector needs --router-namespace when watching all")
        router = RouterTarget(namespace=where, selector=router_selector, port=router_metrics_port)
    serve(
        OperatorSettings(
            namespace=namespace,
            defaults=OperatorDefaults(
                worker_image=worker_image, worker_token_secret=worker_token_secret
            ),
            router=router,
            resync_s=resync_seconds,
            liveness_port=liveness_port,
        )
    )


def serve(settings: OperatorSettings) -> None:
    _quiet_chatty_loggers()
    asyncio.run(_operate(settings))


def _quiet_chatty_loggers() -> None:
    """httpx logs every API call and kopf every handler's success at INFO: at the default
    level that buries what the operator decided. DEBUG still shows them."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "kopf.objects"):
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
    reconciler = Reconciler(
        kube, settings.defaults, namespace=settings.namespace, router_load=router_load
    )
    # Created before kopf starts, so kopf counts it as not its own and leaves it alone.
    resync = asyncio.create_task(_resync_forever(reconciler, settings.resync_s))
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
        resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resync
        if router_load is not None:
            router_load.close()
        kube.close()


async def _resync_forever(reconciler: Reconciler, period_s: float) -> None:
    while True:
        await asyncio.sleep(period_s)
        try:
            await asyncio.to_thread(reconciler.sweep)
        except Exception:  # the loop must outlive any one bad period; the log says what broke
            log.exception("resync failed")
