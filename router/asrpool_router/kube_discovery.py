"""Kubernetes discovery: pools from ASRPool objects, pods from their EndpointSlices.

Watches the namespace's ASRPools (model → pool, perPod, queue, retry policy) and
the EndpointSlices labelled ``asrpool.dev/pool``; after every event the pure
``logic.kube_view.pool_views`` says what the router should serve and this shell
makes the pools match: new ready endpoints get work at once, a terminating one
gets no new work the moment its slice says so, a vanished one is removed (its
requests in flight finish). An edited ASRPool reconfigures its pool in place.

The API client is lightkube's: the pod's service account, else the current context of the
kubeconfig (``KUBECONFIG`` or ``~/.kube/config``; tokens, client certificates, exec plugins),
whose namespace is the default. Objects come as plain dicts (generic resources, no models), as
the pure core takes them; tokens are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource

from .logic.kube_view import POOL_LABEL, aliases, default_model, pool_views
from .pools import PoolRegistry

log = logging.getLogger(__name__)

ASRPOOL = create_namespaced_resource("asrpool.dev", "v1alpha1", "ASRPool", "asrpools")
SLICE = create_namespaced_resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
POOL_SLICES: dict[str, Any] = {POOL_LABEL: None}  # slices with the label, whatever its value

# Called with ("SYNC", [objects]) after each list, then (ADDED|MODIFIED|DELETED, object).
Handler = Callable[[str, Any], None]


class KubeDiscovery:
    def __init__(
        self, pools: PoolRegistry, namespace: str | None = None, client: AsyncClient | None = None
    ) -> None:
        self.client = client or AsyncClient()
        self.namespace = namespace or self.client.namespace
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
                self._list_and_watch(ASRPOOL, None, self._on("asrpools", self._asrpools))
            ),
            asyncio.create_task(
                self._list_and_watch(SLICE, POOL_SLICES, self._on("slices", self._slices))
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    async def _list_and_watch(
        self,
        res: type[GenericNamespacedResource],
        labels: dict[str, Any] | None,
        on_event: Handler,
    ) -> None:
        """Forever: list (``on_event("SYNC", items)``), then watch from the list's version
        (lightkube resumes each watch the server ends from the last version it saw).

        Lists again after a 410 (that version is gone), and after any error with backoff.
        """
        kind, delay = res.__name__, 0.5
        while True:
            try:
                listed = self.client.list(res, namespace=self.namespace, labels=labels)
                on_event("SYNC", [dict(obj) async for obj in listed])
                delay = 0.5
                async for event, obj in self.client.watch(
                    res,
                    namespace=self.namespace,
                    labels=labels,
                    resource_version=listed.resourceVersion,
                ):
                    on_event(event, dict(obj))
            except Exception as exc:  # not CancelledError: stop() ends this
                if isinstance(exc, ApiError) and exc.status.code == 410:
                    log.info("watch of %s expired; listing again", kind)
                    continue
                log.warning("watch of %s failed (%s); retrying in %.1fs", kind, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

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
