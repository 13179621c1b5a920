"""schemathesis, a third-party contract fuzzer, against the real router's and worker's
``/openapi.json``, as a new user would run it: auth on, every check but one.

``positive_data_acceptance`` is left out: random bytes are a schema-valid ``file`` but not
audio, so a valid request is refused with 400 ``invalid_audio``, as it should be. Every
other check holds: no 5xx, only documented statuses, content types, headers and bodies,
400 for data the document says is invalid, 401 without the key, 405 with ``Allow`` for an
undocumented method. A real worker (the bundled tiny.en) stands behind the router, so its
refusals are the worker's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ServerProcess, router, worker

KEY = "contract-key"
EXAMPLES = os.environ.get("ASRPOOL_SCHEMATHESIS_EXAMPLES", "30")


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    tmp = tmp_path_factory.mktemp("contract")
    with worker(tmp) as w, router(tmp, [w.url], api_keys=(KEY,)) as r:
        yield w, r


def schemathesis(url: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--max-examples", EXAMPLES, "--workers", "1", "--no-color",
            "--suppress-health-check", "all", *extra,
        ],
        cwd=cwd,  # its replay store and examples database stay out of the tree
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip


def operations(url: str) -> int:
    """How many operations the served document names: schemathesis must test each one."""
    paths = httpx.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    verbs = {"get", "put", "post", "delete", "patch", "head", "options"}
    return sum(1 for item in paths.values() for verb in item if verb in verbs)


def test_the_routers_document_holds_against_the_router_with_auth_on(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    _, r = servers
    run = schemathesis(r.url, tmp_path, "--header", f"Authorization: Bearer {KEY}")
    assert run.returncode == 0, run.stdout[-12_000:] + run.stderr[-2000:]
    assert operations(r.url) >= 8  # the audio routes, models, health, stats, dashboard
    assert f"Tested: {operations(r.url)}" in run.stdout  # every operation, none skipped


def test_the_workers_document_holds_against_the_worker(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path
) -> None:
    w, _ = servers
    run = schemathesis(w.url, tmp_path)
    assert run.returncode == 0, run.stdout[-12_000:] + run.stderr[-2000:]
    assert operations(w.url) >= 6
    assert f"Tested: {operations(w.url)}" in run.stdout
