"""Flag defaults from ``ASRPOOL_*`` environment variables: every asrpool flag reads one.

An empty variable counts as unset, so a chart or a shell can blank a setting.
"""

from __future__ import annotations

import os


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_int(name: str, default: int, *aliases: str) -> int:
    """The first of ``name`` and its ``aliases`` that is set (e.g. the seed's ASR_* names)."""
    for key in (name, *aliases):
        value = os.environ.get(key)
        if value not in (None, ""):
            return int(value)
    return default
