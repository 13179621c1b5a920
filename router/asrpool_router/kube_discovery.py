"""Kubernetes discovery: pools from ASRPool objects, pods from their EndpointSlices.

Watches the namespace's ASRPools (model → pool, perPod, queue, retry policy) and
the EndpointSlices labelled ``asrpool.dev/pool``; after every event the pure
``logic.kube_view.pool_views`` says what the router should serve and this shell
makes the pools match: new ready endpoints get work at once, a terminating one
gets no new work the moment its slice says so, a vanished one is removed (its
requests in flight finish). An edited ASRPool reconfigures its pool in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .kube_api import Handler, KubeApi, list_and_watch
from .logic.kube_view import POOL_LABEL, aliases, default_model, pool_views
from .pools import PoolRegistry

log = logging.getLogger(__name__)

ASRPOOLS = "/apis/asrpool.dev/v1alpha1/namespaces/{ns}/asrpools"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=" + POOL_LABEL


class KubeDiscovery:
    def __init__(self, api: KubeApi, namespace: str, pools: PoolRegistry) -> None:
        self.api = api
        self.namespace = namespace
        self.pools = pools
        self._asrpools: dict[str, dict[str, Any]] = {}
        self._slices: dict[str, dict[str, Any]] = {}
        self._synced: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def ready(self) -> bool:
        """Both watches listed once: the router knows its pools (it may queue for them)."""
        return self._synced == {"asrpools", "slices"}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                list_and_watch(
                    self.api,
                    ASRPOOLS.format(ns=self.namespace),
                    self._on("asrpools", self._asrpools),
                )
            ),
            asyncio.create_task(
                list_and_watch(
                    self.api, SLICES.format(ns=self.namespace), self._on("slices", self._slices)
                )
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.api.close()

    def _on(self, kind: str, store: dict[str, dict[str, Any]]) -> Handler:
        def handle(event: str, obj: Any) -> None:
            if event == "SYNC":
                store.clear()
                store.update({o["metadata"]["name"]: o for o in obj})
                self._synced.add(kind)
            elif event == "DELETED":
                store.pop(obj["metadata"]["name"], None)
            else:
                store[obj["metadata"]["name"]] = obj
            if self.ready():
                self.apply()

        return handle

    def apply(self) -> None:
        """Make the pools match the latest objects."""
        views = pool_views(self._asrpools, self._slices)
        for model, view in views.items():
            runner = self.pools.ensure(model, view.policy)
            runner.chunking = view.chunking
            if runner.policy != view.policy:
                log.info("pool %s reconfigured: %s", model, view.policy)
                runner.reconfigure(view.policy)
            wanted = {e.pod_id: e for e in view.endpoints}
            for pod in runner.pods():
                if pod.id not in wanted and not pod.removed:
                    runner.remove_pod(pod.id)
            for e in wanted.values():
                runner.upsert_pod(e.pod_id, e.url, ready=e.ready, terminating=e.terminating)
        for runner in self.pools.runners():
            if runner.model not in views:
                for pod in runner.pods():
                    runner.remove_pod(pod.id)
                self.pools.drop(runner.model)
        self.pools.default_model = default_model(views)
        self.pools.aliases = aliases(views)
