"""The cluster's long-running processes: started detached, found again by their pid files.

A daemon outlives the command that started it (``make cluster-up`` returns; the cluster keeps
running), so each one is its own session, writes to ``logs/NAME.log`` and is remembered in
``pids/NAME.pid``; ``stop`` works from those files alone, in any later process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from .host import kill_all
from .layout import Layout


class DaemonError(RuntimeError):
    """A daemon exited or did not become ready; the message ends with its log's tail."""


def log_tail(layout: Layout, name: str, lines: int = 30) -> str:
    try:
        text = (layout.logs / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start(layout: Layout, name: str, argv: Sequence[str]) -> int:
    """Start ``argv`` detached, its output in ``logs/NAME.log``; returns its pid."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.pids.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (layout.pids / f"{name}.pid").write_text(f"{proc.pid}\n")
    # Reap it if it dies while we still run, so `alive` sees it gone rather than a zombie.
    _children[proc.pid] = proc
    return proc.pid


_children: dict[int, subprocess.Popen[bytes]] = {}


def pid_of(layout: Layout, name: str) -> int | None:
    try:
        return int((layout.pids / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None


def alive(layout: Layout, name: str) -> bool:
    pid = pid_of(layout, name)
    if pid is None:
        return False
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(layout: Layout, name: str, grace_s: float = 10.0) -> None:
    pid = pid_of(layout, name)
    if pid is not None and alive(layout, name):
        kill_all({pid}, grace_s)
        child = _children.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1)
    with contextlib.suppress(OSError):
        (layout.pids / f"{name}.pid").unlink()


def wait_until(
    layout: Layout,
    name: str,
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
) -> None:
    """Poll ``ready`` (every 0.25 s, for at most ``timeout_s``); fail early if ``name`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(layout, name):
            raise DaemonError(f"{name} exited before {what}:\n{log_tail(layout, name)}")
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.25)
    raise DaemonError(f"{name}: not {what} after {timeout_s:.0f} s:\n{log_tail(layout, name)}")


def https_ok(url: str, ca_file: Path, token: str | None = None) -> Callable[[], bool]:
    """A readiness check: GET ``url`` answers 200."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    context = ssl.create_default_context(cafile=str(ca_file))

    def check() -> bool:
        return httpx.get(url, verify=context, headers=headers, timeout=3).status_code == 200

    return check


def stop_signal(layout: Layout, name: str, sig: signal.Signals) -> None:
    """Send one signal (no waiting), e.g. to let several daemons stop at once."""
    pid = pid_of(layout, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
