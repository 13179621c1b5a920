"""Reads the pools' load from the routers: every ready router pod's ``/metrics``, one page each.

Called by the autoscaler (``autoscaler.Autoscaler.tick``) once per period when the operator
runs with ``--router-selector``. A router that does not answer is named in ``missing`` and
the others still count: the autoscaler scales on what it has, up only, and never shrinks a
pool because one router's page went missing (during a router rollout, for instance). No
ready router at all, or no way to list them: None, the load is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .kube import PODS, KubeClient, KubeError
from .logic.router_metrics import MetricsError, PoolSample, parse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterTarget:
    """Where the routers are: their namespace, their labels, and the metrics port."""

    namespace: str
    labels: Mapping[str, str]
    port: int = 8000


@dataclass(frozen=True)
class RouterPages:
    """One scrape: each router pod's page by the pod's name, and the ready ones that did not
    answer."""

    pages: dict[str, dict[str, PoolSample]]
    missing: tuple[str, ...] = ()


class RouterLoad:
    def __init__(
        self, kube: KubeClient, target: RouterTarget, http: httpx.Client | None = None
    ) -> None:
        self._kube = kube
        self.target = target
        self._http = http or httpx.Client(timeout=3.0)

    def read(self) -> RouterPages | None:
        """Every ready router's page; None when there is no ready router to read."""
        try:
            pods = self._kube.list(PODS, self.target.namespace, self.target.labels)
        except KubeError as e:
            log.warning("cannot list router pods: %s", e)
            return None
        ready = [p for p in pods if _ready(p)]
        if not ready:
            return None
        pages: dict[str, dict[str, PoolSample]] = {}
        missing = []
        for pod in ready:
            name = str(pod["metadata"]["name"])
            url = _metrics_url(pod, self.target.port)
            try:
                response = self._http.get(url)
                response.raise_for_status()
                pages[name] = parse(response.text)
            except (httpx.HTTPError, MetricsError) as e:
                log.warning("router metrics %s unreadable: %s", url, e)
                missing.append(name)
        return RouterPages(pages, tuple(sorted(missing)))

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
