"""Where tests keep what a person may want to look at afterwards (screenshots).

``$ASRPOOL_TEST_ARTIFACTS`` if set (CI can collect it), else ``test-artifacts/`` at the
repository's root (ignored by git). Each run overwrites the files of the last.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def artifact_path(name: str) -> Path:
    root = Path(os.environ.get("ASRPOOL_TEST_ARTIFACTS") or REPO / "test-artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root / name
