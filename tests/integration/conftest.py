"""Fixtures of the integration tests: real processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import LocalPool, start_local


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPool]:
    """`asrpool local --workers 2` with a generated API key, shared by a module's tests."""
    local = start_local(tmp_path_factory.mktemp("local"))
    try:
        yield local
    finally:
        local.proc.stop()
