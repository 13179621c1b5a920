"""Fixtures shared by every test: synthesized speech and real worker processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import ServerProcess, worker
from tests.support.speech import SENTENCES, synthesize


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    """Each known sentence as a 16 kHz wav, plus 'long' (all of them) and 30 s of 'silence'."""
    root = tmp_path_factory.mktemp("speech")
    clips = {
        name: Clip(synthesize(text, root / f"{name}.wav"), text) for name, text in SENTENCES.items()
    }
    long_path = root / "long.wav"
    subprocess.run(["sox", *[str(c.path) for c in clips.values()], str(long_path)], check=True)
    clips["long"] = Clip(long_path, " ".join(SENTENCES.values()))
    silence = root / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "trim", "0", "30"],
        check=True,
    )
    clips["silence"] = Clip(silence, "")
    return clips


@pytest.fixture(scope="module")
def worker_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real worker with the bundled tiny.en model, shared by a module's tests."""
    with worker(tmp_path_factory.mktemp("worker")) as proc:
        yield proc
