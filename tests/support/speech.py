"""Real English speech for tests, synthesized with espeak-ng at test time.

Known sentences → wav files; the expected text is the sentence itself. espeak-ng
is installed by ``make test`` (tests/ensure-system-packages.sh); when it is
missing the tests fail loudly rather than skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jiwer

# Sentences tiny.en reads back well in espeak-ng's voice: the tests measure our
# pipeline, not the synthetic voice's accent.
SENTENCES = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "meeting": "Please send the meeting notes to everyone before Friday afternoon.",
    "library": "She borrowed three books from the public library last week.",
    "office": "We will open a new office in the city next spring.",
    "station": "Turn left at the next corner and walk two blocks to the station.",
    "children": "The children played football in the park after school.",
}
# The clips the accuracy tests score.
SCORED = ("meeting", "library", "office", "station", "children")


def synthesize(text: str, path: Path, *, rate: int = 16_000, speed: int = 150) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed; run `make test`, which installs it")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run([espeak, "-v", "en", "-s", str(speed), "-w", str(raw), text], check=True)
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is not installed; run `make test`, which installs it")
    # Resample to what a client would upload, with a short pause either side.
    subprocess.run(
        [sox, str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path), "pad", "0.3", "0.3"],
        check=True,
    )
    raw.unlink()
    return path


def normalize(text: str) -> str:
    """Lower case, punctuation gone, single spaces: what WER should compare."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>"))
