"""The peers' own virtualenvs under ~/.cache/asrpool/bench, one per peer, pinned by version.

Each peer pins packages our venv cannot hold beside asrpool's (LiteLLM pins half of PyPI;
WhisperLive pins an older faster-whisper; both realtime peers pull torch), so each gets its
own virtualenv, ``<name>-venv``, installed from PyPI on first use with ``pip``. A venv whose
installed version is not the pinned one is upgraded in place; one that cannot be installed
(no network, no wheel for this Python) is reported with pip's last lines, never papered over.

Run: python -m bench.peers.venvs [--check] [NAME …]   (install, or only report, the peers)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# ASRPOOL_BENCH_PEERS: somewhere else (another disk; or an empty folder, to see how the
# harness reports peers it may not install).
ROOT = Path(os.environ.get("ASRPOOL_BENCH_PEERS") or Path.home() / ".cache" / "asrpool" / "bench")


@dataclass(frozen=True)
class Peer:
    name: str  # the venv is ROOT / f"{name}-venv"
    package: str  # the distribution whose version is pinned
    version: str
    extras: str = ""
    why: str = ""

    @property
    def venv(self) -> Path:
        return ROOT / f"{self.name}-venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def bin(self, command: str) -> Path:
        return self.venv / "bin" / command

    @property
    def requirement(self) -> str:
        return f"{self.package}{self.extras}=={self.version}"


PEERS = {
    p.name: p
    for p in (
        Peer("litellm", "litellm", "1.108.7", "[proxy]", "LiteLLM's Router and proxy"),
        Peer(
            "faster-whisper-server",
            "faster-whisper-server",
            "0.0.3",
            why="plain OpenAI-compatible serving (speaches' predecessor)",
        ),
        Peer("whisper-live", "whisper-live", "0.10.0", why="realtime (WhisperLive)"),
        Peer("whisperlivekit", "whisperlivekit", "0.2.26", why="realtime (WhisperLiveKit)"),
    )
}


def shown(path: Path) -> str:
    """A path as the docs show it: under ~, never this machine's home directory."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def shown_in(text: str) -> str:
    """``text`` with this machine's home directory written as ~."""
    return text.replace(str(Path.home()) + "/", "~/")


def installed_version(peer: Peer) -> str | None:
    if not peer.python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({peer.package!r}))"
    done = subprocess.run(
        [str(peer.python), "-c", code], capture_output=True, text=True, timeout=120
    )
    return done.stdout.strip() if done.returncode == 0 else None


def ensure(peer: Peer, *, install: bool = True) -> tuple[bool, str]:
    """(ready, what happened): installed at the pinned version, or why not."""
    have = installed_version(peer)
    if have == peer.version:
        return True, f"{peer.requirement} in {shown(peer.venv)}"
    if not install:
        why = f"{peer.requirement} is not installed in {shown(peer.venv)}"
        if have is not None:
            why += f" (it has {have})"
        log = ROOT / f"{peer.name}-install.log"
        if log.exists() and log.stat().st_size:
            last = " ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            why += f"; the last install attempt said: {shown_in(last)[-400:]}"
        return False, why
    ROOT.mkdir(parents=True, exist_ok=True)
    if not peer.python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(peer.venv)], capture_output=True, text=True
        )
        if made.returncode != 0:
            return False, f"python -m venv failed: {made.stderr.strip()[-400:]}"
    log = ROOT / f"{peer.name}-install.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(peer.python), "-m", "pip", "install", "-q", peer.requirement],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3600,
        )
    if done.returncode != 0:
        tail = " ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        return False, f"pip install {peer.requirement} failed: {shown_in(tail)[-500:]}"
    return True, f"installed {peer.requirement} in {shown(peer.venv)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"of {', '.join(PEERS)} (default: all)")
    parser.add_argument("--check", action="store_true", help="only report, install nothing")
    args = parser.parse_args()
    unknown = set(args.names) - set(PEERS)
    if unknown:
        parser.error(f"no peer {', '.join(sorted(unknown))}")
    failed = 0
    for name in args.names or PEERS:
        ok, what = ensure(PEERS[name], install=not args.check)
        failed += not ok
        print(f"{name:<22} {'ok ' if ok else 'NO '} {what}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
