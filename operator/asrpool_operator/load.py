"""Reads the pools' load from the routers: every ready router pod's ``/metrics``, added up.

Called by the resync (``reconcile.Reconciler.sweep``) once per period when the operator runs
with ``--router-selector``. All or nothing: when a ready router does not answer, the load is
unknown (None) rather than too low, so the autoscaler never shrinks a pool because one
router's page went missing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .kube import PODS, KubeClient, KubeError
from .logic.autoscale import PoolLoad
from .logic.router_metrics import MetricsError, parse, total

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterTarget:
    """Where the routers are: their namespace, a label selector, and the metrics port."""

    namespace: str
    selector: str
    port: int = 8000


class RouterLoad:
    def __init__(
        self, kube: KubeClient, target: RouterTarget, http: httpx.Client | None = None
    ) -> None:
        self._kube = kube
        self.target = target
        self._http = http or httpx.Client(timeout=3.0)

    def read(self) -> dict[str, PoolLoad] | None:
        """Load by model name over all ready routers; None when any of them is unreadable."""
        try:
            pods = self._kube.list(PODS, self.target.namespace, self.target.selector)
        except KubeError as e:
            log.warning("cannot list router pods: %s", e)
            return None
        urls = [_metrics_url(p, self.target.port) for p in pods if _ready(p)]
        if not urls:
            return None
        pages = []
        for url in urls:
            try:
                response = self._http.get(url)
                response.raise_for_status()
                pages.append(parse(response.text))
            except (httpx.HTTPError, MetricsError) as e:
                log.warning("router metrics %s unreadable: %s", url, e)
                return None
        return total(pages)

    def close(self) -> None:
        self._http.close()


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _metrics_url(pod: Mapping[str, Any], port: int) -> str:
    ip = str(pod["status"]["podIP"])
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}/metrics"
