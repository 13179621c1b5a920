"""How many bytes all the uploads the router holds at once may take (memory and spool files).

The router keeps each upload (spooled to disk past 1 MiB) while its request waits in the
queue and across retries, so a burst of large uploads could fill the disk or the memory of
the router's pod. ``SpoolBudget`` caps their sum: ``asrpool_contract.uploads`` takes bytes from a
request's ``SpoolHold`` as they stream in (the declared Content-Length at once, when there
is one, so a request that cannot fit is refused before it is read), and the route releases
the hold when the request is done with its upload. Past the cap the upload is refused with
429 ``queue_full`` and a Retry-After: never a full disk, never a crash.

Invariants (property-tested): ``held_bytes`` never exceeds ``limit_bytes``; releasing every
hold, however often, brings ``held_bytes`` and ``holds`` back to zero.

Pure: no I/O, no clock. Called by ``asrpool_contract.uploads`` (through its ``SpoolHold`` protocol)
and ``app._read_job``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SpoolBudget:
    """The shared cap; ``limit_bytes`` 0 means no cap (the counts are still kept)."""

    limit_bytes: int
    # What a refused client is told to wait: held uploads go as their requests finish,
    # which for most requests is seconds (the queue timeout bounds the rest).
    retry_after_s: float = 5.0
    held_bytes: int = 0
    holds: int = 0  # holds open now
    refused: int = 0  # takes refused since start

    def hold(self) -> SpoolHold:
        """A new, empty hold for one request's upload."""
        self.holds += 1
        return SpoolHold(self)

    def _take(self, n: int) -> bool:
        if self.limit_bytes and self.held_bytes + n > self.limit_bytes:
            self.refused += 1
            return False
        self.held_bytes += n
        return True


class SpoolHold:
    """One request's share of the budget; ``release`` gives all of it back, once."""

    def __init__(self, budget: SpoolBudget) -> None:
        self._budget = budget
        self.bytes = 0
        self._open = True

    @property
    def retry_after_s(self) -> float:
        return self._budget.retry_after_s

    def take(self, n: int) -> bool:
        """Hold ``n`` more bytes; False (and nothing held) when the budget has no room."""
        if n < 0:
            raise ValueError("take() needs a byte count >= 0")
        if not self._open:
            # A released hold must not count again: its request already gave its bytes back.
            raise RuntimeError("take() on a released hold")
        if not self._budget._take(n):
            return False
        self.bytes += n
        return True

    def release(self) -> None:
        """Give back every byte held; later calls do nothing (every error path may call it)."""
        if not self._open:
            return
        self._open = False
        self._budget.held_bytes -= self.bytes
        self._budget.holds -= 1
        self.bytes = 0
