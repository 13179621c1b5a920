"""Debian's headless Chromium for the page tests, driven by Playwright (nothing downloaded).

``scripts/ensure-system-packages.sh`` installs chromium; ``make test`` runs it. The recorder
page's test adds a fake microphone to these arguments; the dashboard's needs none.
"""

from __future__ import annotations

import shutil

# Headless, offline (no update, sync or QUIC traffic), no first-run UI.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "chromium is not installed; run `make test` "
            "(scripts/ensure-system-packages.sh installs Debian's chromium)"
        )
    return path
