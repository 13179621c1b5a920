"""Run one fuzz target (``targets.py``) under atheris, libFuzzer's coverage-guided engine.

    python -m tests.fuzz.run_atheris TARGET [libFuzzer flags…] [CORPUS_DIR…]

``make fuzz`` runs every target for a while in a scratch corpus seeded from
``tests/fuzz/corpus/``; ``tests/fuzz/test_atheris.py`` runs each for a few seconds in
``make test``. An input that breaks a target is written as ``crash-…`` (libFuzzer's
``-artifact_prefix``): copy it into ``tests/fuzz/corpus/<target>/`` with a name that says
what it broke, fix the parser, and it is a regression test from then on.

atheris builds only for CPython on Linux and macOS (a wheel for x86-64 Linux); where it
does not install, the hypothesis half of the fuzzing still runs.
"""

from __future__ import annotations

import sys

import atheris

# Coverage feedback from our own code only: instrumenting numpy or pydantic would slow the
# run and steer it to their branches.
with atheris.instrument_imports(include=["asrpool", "asrpool_router", "asrpool_worker"]):
    from tests.fuzz.targets import TARGETS


def main() -> None:
    name = sys.argv[1]
    target = TARGETS[name]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
