"""Filter: drop the pods this request must avoid (those its earlier attempts failed on).

Failover only helps if the retry lands somewhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pods import PodState
from ..request import Request


class ExcludeTriedFilter:
    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        if not request.exclude:
            return list(pods)
        return [pod for pod in pods if pod.id not in request.exclude]
