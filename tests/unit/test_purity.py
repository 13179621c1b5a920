"""The decision cores stay pure: no event loop, network, Kubernetes client, clock or chance.

Time and chance are inputs (``now``, an injected ``Rng``), so every decision of the router
(scheduling, retries, chunking) and of the operator (manifests, status, scaling) replays in
a table. This scans the imports of every module of each core; import-linter checks the same
contracts in ``make lint``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IO_AND_CHANCE = {
    "asyncio", "httpx", "httpx2", "fastapi", "starlette", "uvicorn", "kopf", "lightkube",
    "kubernetes", "aiohttp",
    "urllib3", "requests", "time", "random", "socket", "subprocess", "threading",
}  # fmt: skip
CORES = {
    # core: (forbidden roots, modules that must be there, so the scan cannot see nothing)
    "router/asrpool_router/logic": (
        IO_AND_CHANCE,
        {"pool.py", "scheduler.py", "retry.py", "power_of_two_picker.py", "chunking.py"},
    ),
    "operator/asrpool_operator/logic": (
        IO_AND_CHANCE | {"os"},
        {"spec.py", "manifests.py", "plan.py", "status.py", "autoscale.py"},
    ),
}
MODULES = [(core, path) for core in CORES for path in sorted((REPO / core).rglob("*.py"))]


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    ("core", "path"), MODULES, ids=[str(p.relative_to(REPO)) for _, p in MODULES]
)
def test_core_module_imports_no_io_clock_or_chance(core: str, path: Path) -> None:
    assert not _imported_roots(path) & CORES[core][0]


@pytest.mark.parametrize("core", sorted(CORES))
def test_the_scan_sees_each_core(core: str) -> None:
    names = {p.name for c, p in MODULES if c == core}
    assert CORES[core][1] <= names
