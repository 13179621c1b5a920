"""The worker's slots: how many requests it takes at once, whoever sends them.

Several routers share one pod, and each knows only its own requests. The worker is the
authority: a request past its slots is refused at once with ``worker_busy`` (which a
router never counts as a failure) instead of queueing inside the worker, where it would
hide the overload and realtime pieces could not overtake batch uploads. Every answer
carries ``slots``, ``in_use`` (``asrpool_contract.wire.SLOTS_HEADER`` and ``IN_FLIGHT_HEADER``) so
the routers converge on what is really free.

Pure: used from the event loop thread only, so it needs no lock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SlotGate:
    slots: int
    in_use: int = 0

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError("a worker needs at least one slot")

    def try_take(self) -> bool:
        """Take a slot for one request, or False when all are in use."""
        if self.in_use >= self.slots:
            return False
        self.in_use += 1
        return True

    def give_back(self) -> None:
        self.in_use = max(0, self.in_use - 1)
