"""Where kept answers live: in this router's memory, or in Redis for a fleet of routers.

The decisions (the key, what a request's ``Cache-Control`` allows, eviction) are in
``logic.result_cache``; this shell only stores and fetches. The cache is a help, never a
dependency: Redis gone or slow means a miss and a log line, not a failed request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import IO, Protocol

import anyio

from .logic.result_cache import CachedAnswer, LruCache

log = logging.getLogger(__name__)

_REDIS_PREFIX = "asrpool:answer:"
_REDIS_TIMEOUT_S = 0.5


class AnswerCache(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    def __init__(self, max_bytes: int) -> None:
        self._lru = LruCache(max_bytes)

    async def get(self, key: str) -> CachedAnswer | None:
        return self._lru.get(key)

    async def put(self, key: str, answer: CachedAnswer) -> None:
        self._lru.put(key, answer)

    async def close(self) -> None:
        return None


class RedisCache:
    """Answers in Redis under ``asrpool:answer:<key>``, each for ``ttl_s`` seconds."""

    def __init__(self, url: str, ttl_s: float, max_answer_bytes: int) -> None:
        import redis.asyncio as redis  # only for a fleet that asked for it

        self._redis = redis.from_url(url, socket_timeout=_REDIS_TIMEOUT_S)
        self.ttl_s = ttl_s
        self.max_answer_bytes = max_answer_bytes

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT_S):
                fields = await self._redis.hgetall(_REDIS_PREFIX + key)
        except Exception as exc:  # a cache that is down is a miss
            log.warning("answer cache (redis) unreachable: %s", exc)
            return None
        content, content_type = fields.get(b"content"), fields.get(b"content_type", b"")
        if not isinstance(content, bytes) or not isinstance(content_type, bytes):
            return None
        return CachedAnswer(content_type.decode(), content)

    async def put(self, key: str, answer: CachedAnswer) -> None:
        if answer.size > self.max_answer_bytes:
            return
        name = _REDIS_PREFIX + key
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT_S), self._redis.pipeline() as pipe:
                pipe.hset(
                    name, mapping={"content_type": answer.content_type, "content": answer.content}
                )
                pipe.expire(name, max(1, int(self.ttl_s)))
                await pipe.execute()
        except Exception as exc:
            log.warning("answer cache (redis) unreachable: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()


async def audio_digest(file: IO[bytes]) -> str:
    """sha256 of the whole upload, in a thread (a 25 MB upload takes tens of ms)."""

    def digest() -> str:
        file.seek(0)
        h = hashlib.sha256()
        while chunk := file.read(2**20):
            h.update(chunk)
        file.seek(0)
        return h.hexdigest()

    return await anyio.to_thread.run_sync(digest)
