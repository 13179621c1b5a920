"""Filter: drop pods that their circuit breaker has ejected.

A pod whose cool-down is over stays in: the next grant there is the breaker's probe.
While the probe is in flight the pod is out again, so exactly one request tests it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pods import PodState
from ..request import Request


class NotEjectedFilter:
    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        return [pod for pod in pods if pod.breaker.admits(now)]
