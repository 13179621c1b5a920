"""The randomness seam of the decision core.

Code in ``logic`` never imports ``random``: whoever needs chance (the power-of-two picker)
takes an ``Rng``. The shell passes ``random.Random()``; tests
pass a seeded one. ``SeededRng`` is the fallback when nobody injects anything, so a
``Pool`` built without an rng is still deterministic and reproducible.
"""

from __future__ import annotations

from typing import Protocol

_MASK64 = (1 << 64) - 1


class Rng(Protocol):
    """Anything with ``random() -> float in [0, 1)``, like ``random.Random``."""

    def random(self) -> float: ...


class SeededRng:
    """SplitMix64: a tiny reproducible generator. Good for spreading load, not for secrets."""

    def __init__(self, seed: int = 0) -> None:
        self._state = seed & _MASK64

    def random(self) -> float:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        # The top 53 bits fill a double's mantissa exactly: uniform in [0, 1).
        return (z >> 11) / float(1 << 53)


def choose_index(rng: Rng, n: int) -> int:
    """A uniform index in ``range(n)``; ``n`` must be positive."""
    if n <= 0:
        raise ValueError("choose_index needs at least one item")
    # min() guards injected generators that may return exactly 1.0.
    return min(n - 1, int(rng.random() * n))
