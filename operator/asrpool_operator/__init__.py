"""The asrpool operator: turns ASRPool resources into worker Deployments (kopf).

``run(namespace, ...)`` starts it (``asrpool operator``, ``python -m asrpool_operator``).
Layers, each importing only those below it:

    main        builds everything once, runs kopf, the resync and the autoscaler side by side
    handlers    kopf event handlers: name the pool an event is about, nothing more
    autoscaler  every few seconds: the routers' load → decisions → scale, deletion costs
    reconcile   read the world, ask the core, write only the differences
    metrics     the operator's own /metrics: what the autoscaler read, decided and why
    load        the routers' /metrics over httpx
    kube        the Kubernetes API calls (lightkube) and kopf's login
    logic/      every decision, pure (spec, manifests, plan, status, autoscale, ...)
"""

from __future__ import annotations

from typing import Any


def run(namespace: str | None, **options: Any) -> None:
    """Run the operator; see ``asrpool_operator.main.run`` for the options."""
    from .main import run as _run  # kopf is imported only when the operator runs

    _run(namespace, **options)


__all__ = ["run"]
