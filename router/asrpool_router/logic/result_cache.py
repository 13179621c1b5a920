"""Answers to identical requests, kept: the same audio asked the same way decodes once.

Users send the same recording more than once (a retry after a client time-out, a page
reloaded, a batch job run again). The key is a hash of everything that shapes the answer:
who asks (a hash of the API key: tenants never share answers), the route, the pool's
model, every form field as sent but ``model`` (the pool stands for it), and the audio's
bytes. Only complete 200 answers are kept; a request with ``Cache-Control: no-store``
neither reads nor fills the cache, ``no-cache`` skips the read.

``LruCache`` is the in-memory store, bounded by the bytes it holds; the shell offers a
Redis store with the same two calls for a fleet of routers. Pure.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedAnswer:
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content) + len(self.content_type) + 64


def request_key(
    *,
    tenant: str,
    path: str,
    pool: str,
    fields: Iterable[tuple[str, str]],
    audio_digest: str,
) -> str:
    """The cache key of one request (hex); ``audio_digest`` is the upload's sha256."""
    h = hashlib.sha256()
    for part in (
        hashlib.sha256(tenant.encode()).hexdigest(),  # never the key itself
        path,
        pool,
        audio_digest,
        *(f"{k}={v}" for k, v in sorted(f for f in fields if f[0] != "model")),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class CacheDirective:
    read: bool
    write: bool


def directive(cache_control: str | None) -> CacheDirective:
    """What the request's ``Cache-Control`` allows (RFC 9111 request directives)."""
    tokens = {t.strip().split("=", 1)[0].lower() for t in (cache_control or "").split(",")}
    if "no-store" in tokens:
        return CacheDirective(read=False, write=False)
    return CacheDirective(read="no-cache" not in tokens, write=True)


class LruCache:
    """Least recently used answers, at most ``max_bytes`` of them (one at most an eighth)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, CachedAnswer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedAnswer | None:
        answer = self._entries.get(key)
        if answer is not None:
            self._entries.move_to_end(key)
        return answer

    def put(self, key: str, answer: CachedAnswer) -> bool:
        """Keep ``answer``; False when it is too large to be worth a place."""
        if answer.size > self.max_bytes // 8:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.size -= old.size
        self._entries[key] = answer
        self.size += answer.size
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= evicted.size
        return True
