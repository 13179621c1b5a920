"""Filter: keep pods that discovery reports ready, not terminating and not removed.

A terminating pod still finishes what it holds (Kubernetes gives it a grace period) but
must not get new work, or the work dies with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pods import PodState
from ..request import Request


class ReadyFilter:
    def filter(self, pods: Sequence[PodState], request: Request, now: float) -> list[PodState]:
        return [pod for pod in pods if pod.schedulable]
