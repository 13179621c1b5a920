"""The operator's decision core stays pure: no kopf, no Kubernetes client, no I/O, no clock.

Time is a parameter (``now``), so every status and scaling decision replays in a table. This
scans the imports of every module under ``asrpool_operator/logic``; import-linter checks the
same contract in ``make lint``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LOGIC = Path(__file__).resolve().parents[2] / "operator" / "asrpool_operator" / "logic"
FORBIDDEN = {
    "kopf", "kubernetes", "httpx", "asyncio", "aiohttp", "urllib3", "requests",
    "time", "random", "socket", "subprocess", "threading", "os",
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


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_logic_module_imports_no_io_clock_or_kubernetes(path: Path) -> None:
    assert not _imported_roots(path) & FORBIDDEN


def test_the_scan_sees_the_operators_core() -> None:
    names = {p.name for p in MODULES}
    assert {"spec.py", "manifests.py", "plan.py", "status.py", "autoscale.py"} <= names
