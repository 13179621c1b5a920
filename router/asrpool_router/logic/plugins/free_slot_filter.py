"""Filter: keep pods with a slot free for this router now (``PodState.room``).

Whisper's GPU memory grows with concurrent decodes; a pod past its budget would OOM, so
a request waits in the router's queue rather than pile onto a full pod. The room counts
the pod's own slot count and what other routers hold, as the pod last reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pods import PodState
from ..request import Request


class FreeSlotFilter:
    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        return [pod for pod in pods if pod.room(now) > 0]
