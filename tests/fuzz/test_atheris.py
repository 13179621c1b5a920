"""Run each fuzz target under atheris (coverage-guided) for a few seconds: no crash, no hang.

``ASRPOOL_ATHERIS_SECONDS`` sets the time a target (``make fuzz``: a minute each), and
``ASRPOOL_FUZZ_CORPUS_DIR`` a folder where each target's grown corpus is kept between runs
(``make fuzz`` keeps it in ``.fuzz/``); by default it grows in a temporary folder from the
committed seeds. A crash fails the test with the input, to be added to the corpus.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

pytest.importorskip("atheris", reason="atheris does not install on this platform")

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
SECONDS = int(os.environ.get("ASRPOOL_ATHERIS_SECONDS", "3"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_atheris_breaks_no_target(target: str, tmp_path: Path) -> None:
    kept = os.environ.get("ASRPOOL_FUZZ_CORPUS_DIR")
    corpus = Path(kept) / target if kept else tmp_path / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in (CORPUS / target).iterdir():
        shutil.copy(seed, corpus / seed.name)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run_atheris",
            target,
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={artifacts}/",
            "-timeout=10",  # one input taking 10 s is a hang
            "-rss_limit_mb=4096",
            "-max_len=8192",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    found = {p.name: p.read_bytes()[:400] for p in artifacts.iterdir()}
    assert proc.returncode == 0 and not found, (
        f"atheris broke {target}: {found}\n(add the input to tests/fuzz/corpus/{target}/)\n"
        + proc.stderr[-4000:]
    )
