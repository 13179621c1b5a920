"""Static discovery: a fixed list of backend URLs, health-checked on an interval.

Used by ``asrpool local`` and ``asrpool router --backend``. Each backend is a
pod of the pool named by the first model its ``/v1/models`` lists. It is ready
while ``/readyz`` answers 200 (or, for servers without ``/readyz``, while
``/v1/models`` does). A pod that stops answering is marked not ready at the
next check and gets no new work; its slots in flight come back as they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .logic.pod_load import PodLoad
from .pools import PoolRegistry
from .transport import PodTransport

log = logging.getLogger(__name__)


class StaticDiscovery:
    def __init__(
        self,
        urls: tuple[str, ...],
        pools: PoolRegistry,
        transport: PodTransport,
        interval_s: float,
    ) -> None:
        self.urls = tuple(u.rstrip("/") for u in urls)
        self.pools = pools
        self.transport = transport
        self.interval_s = interval_s
        self._model_of: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def ready(self) -> bool:
        """Some backend takes work now."""
        return self.pools.any_ready()

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(url) for url in self.urls))

    async def _check(self, url: str) -> None:
        model = self._model_of.get(url)
        if model is None:
            status, body = await self.transport.get_json(url + "/v1/models")
            model = _first_model(body) if status == 200 else None
            if model is None:
                return  # not up yet (or not a Whisper server); try again next round
            self._model_of[url] = model
            log.info("backend %s serves %s", url, model)
        status, body = await self.transport.get_json(url + "/readyz")
        if status == 404:  # a third-party server without /readyz: answering is ready enough
            status, body = await self.transport.get_json(url + "/v1/models")
        runner = self.pools.ensure(model)
        ready = status == 200
        runner.upsert_pod(url, url, ready=ready, load=_reported_load(body))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_all()
            except Exception:  # a bad round must not stop discovery
                log.exception("health check round failed")

    async def start(self) -> None:
        await self.check_all()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _reported_load(body: object) -> PodLoad | None:
    """Our worker's /readyz says its slots and their use; other servers say nothing."""
    load = body.get("load") if isinstance(body, dict) else None
    if not isinstance(load, dict):
        return None
    return PodLoad.parse(str(load.get("slots")), str(load.get("in_flight")))


def _first_model(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        first = body["data"][0]
        if isinstance(first, dict) and isinstance(first.get("id"), str):
            return first["id"]
    return None
