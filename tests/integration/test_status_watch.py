"""``asrpool status --watch`` in a pseudo-terminal, against ``asrpool local --workers 2``.

The command runs as it would in a person's terminal: its own session with the pty as its
controlling terminal (120×40), so rich draws in place, and Ctrl-C is the byte 0x03 typed
into the terminal, which the kernel turns into SIGINT for it.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Clip
from tests.support.procs import LocalPool

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Terminal:
    """A child process on a pty; ``screen`` is everything it wrote, escapes stripped."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            # The pty becomes the new session's controlling terminal: 0x03 → SIGINT.
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        )
        os.close(slave)
        self.raw = b""

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace"))

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    return
                if not chunk:
                    return
                self.raw += chunk

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.screen):
                return match
            self.read_for(0.2)
        raise AssertionError(f"no {pattern!r} after {timeout_s}s; screen:\n{self.screen[-3000:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def test_watch_shows_the_pods_redraws_in_place_and_quits_on_ctrl_c(
    pool: LocalPool, terminal: list[Terminal], speech: dict[str, Clip]
) -> None:
    stats = httpx.get(f"{pool.url}/stats", headers=pool.auth).json()
    pods = [p["id"].removeprefix("http://") for p in stats["pools"][0]["pods"]]
    before = stats["total_tasks"]
    argv = [sys.executable, "-m", "asrpool", "status", "--watch", "--interval", "0.3"]
    term = Terminal([*argv, "--url", pool.url, "--api-key", pool.api_key])
    terminal.append(term)

    term.wait_for(r"poll 3\b", 20)
    for pod in pods:
        assert re.search(rf"{re.escape(pod)}\s+ready\s+1/1\s+0\b", term.screen), term.screen
    # In place: the cursor went back up over the old picture (rich's Live), not a scroll of
    # new copies. Each redraw moves up the picture's height.
    assert b"\x1b[2K" in term.raw and re.search(rb"\x1b\[\d*A", term.raw)

    # A request seen through the picture: requests go up by one.
    clip = speech["fox"]
    resp = httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        files={"file": (clip.path.name, clip.path.read_bytes())},
        headers=pool.auth,
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    term.wait_for(rf"requests {before + 1} \(", 10)

    os.write(term.master, b"\x03")  # Ctrl-C, typed
    assert term.proc.wait(10) == 0
    term.read_for(0.5)
    assert "Traceback" not in term.screen, term.screen[-3000:]
