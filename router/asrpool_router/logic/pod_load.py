"""What a pod says of its own load: its slots, and how many are in use.

Our worker is the authority on its capacity (a fleet of routers shares it): it reports
``slots`` and ``in_flight`` (every router's requests, once the answer is sent) on every
answer and on ``/readyz``. ``PodState.observe`` turns a report into the share of slots
other routers hold; a third-party backend reports nothing and is judged by its answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodLoad:
    slots: int
    in_flight: int

    @classmethod
    def parse(cls, slots: str | None, in_flight: str | None) -> PodLoad | None:
        """From the two header values; None unless both are whole numbers, slots >= 1."""
        if slots is None or in_flight is None:
            return None
        try:
            load = cls(int(slots), int(in_flight))
        except ValueError:
            return None
        return load if load.slots >= 1 and load.in_flight >= 0 else None
