"""The router's decision core stays pure: no event loop, network, clock or random source.

Time and chance are inputs (``now``, an injected ``Rng``) so every decision can be
replayed in a table. This scans the imports of every module under ``logic``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import asrpool_router.logic

LOGIC = Path(asrpool_router.logic.__file__).parent
FORBIDDEN = {
    "asyncio", "httpx", "fastapi", "starlette", "uvicorn", "kopf", "kubernetes",
    "time", "random", "socket", "subprocess", "threading",
}  # fmt: skip
MODULES = sorted(LOGIC.rglob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(LOGIC)) for p in MODULES])
def test_logic_module_imports_no_io_clock_or_randomness(path: Path) -> None:
    assert not _imported_roots(path) & FORBIDDEN


def test_the_scan_sees_the_scheduling_core() -> None:
    names = {p.name for p in MODULES}
    assert {"pool.py", "scheduler.py", "retry.py", "power_of_two_picker.py"} <= names
