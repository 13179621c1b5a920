"""Kept answers to identical requests (asrpool_router.logic.result_cache)."""

from __future__ import annotations

import pytest

from asrpool_router.logic.result_cache import (
    CachedAnswer,
    CacheDirective,
    LruCache,
    directive,
    request_key,
)

BASE = {
    "tenant": "key-a",
    "path": "/v1/audio/transcriptions",
    "pool": "tiny.en",
    "fields": [("response_format", "json"), ("language", "en")],
    "audio_digest": "ab" * 32,
}


def key(**changes: object) -> str:
    return request_key(**{**BASE, **changes})  # type: ignore[arg-type]


def test_the_same_request_has_the_same_key_whatever_the_field_order_or_model_name() -> None:
    assert key() == key(fields=[("language", "en"), ("response_format", "json")])
    assert key() == key(fields=[*BASE["fields"], ("model", "gpt-4o-mini-transcribe")])  # type: ignore[misc]


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "key-b"},  # tenants never share answers
        {"path": "/v1/audio/translations"},
        {"pool": "large-v3"},
        {"audio_digest": "cd" * 32},
        {"fields": [("response_format", "text"), ("language", "en")]},
        {"fields": [("response_format", "json")]},
    ],
)
def test_anything_that_shapes_the_answer_changes_the_key(change: dict[str, object]) -> None:
    assert key(**change) != key()


def test_the_key_never_holds_the_api_key() -> None:
    assert "key-a" not in key() and len(key()) == 64


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (None, CacheDirective(read=True, write=True)),
        ("max-age=0", CacheDirective(read=True, write=True)),
        ("no-cache", CacheDirective(read=False, write=True)),
        ("No-Store", CacheDirective(read=False, write=False)),
        ("private, no-store", CacheDirective(read=False, write=False)),
    ],
)
def test_cache_control_says_what_the_request_allows(
    header: str | None, allowed: CacheDirective
) -> None:
    assert directive(header) == allowed


def test_the_least_recently_used_answers_go_first_and_the_bytes_stay_bounded() -> None:
    one_kb = CachedAnswer("application/json", b"x" * 1000)
    cache = LruCache(max_bytes=10 * one_kb.size)
    for i in range(10):
        assert cache.put(f"k{i}", one_kb)
    assert cache.get("k0") is one_kb  # now the most recent
    cache.put("k10", one_kb)
    assert cache.get("k1") is None and cache.get("k0") is one_kb
    assert cache.size <= cache.max_bytes and len(cache) == 10
    assert not cache.put("huge", CachedAnswer("text/plain", b"x" * cache.max_bytes))
