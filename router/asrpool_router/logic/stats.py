"""Request counters in the shape the team we replace used (``/stats``), per pool and overall.

``max_concurrent, active_tasks, total_tasks, failed_tasks, oom_errors, success_rate``:
their dashboards read these names, so they stay; we add retries and failovers by reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestStats:
    total_tasks: int = 0
    failed_tasks: int = 0
    oom_errors: int = 0  # OOM answers seen from pods, whether or not a retry then succeeded
    retries: dict[str, int] = field(default_factory=dict)  # reason → count

    def finished(self, *, ok: bool) -> None:
        self.total_tasks += 1
        if not ok:
            self.failed_tasks += 1

    def attempt_failed(self, reason: str) -> None:
        """One attempt on one pod failed (``reason`` is the outcome kind)."""
        if reason == "oom":
            self.oom_errors += 1

    def retried(self, reason: str) -> None:
        self.retries[reason] = self.retries.get(reason, 0) + 1

    def view(self, *, max_concurrent: int, active_tasks: int) -> dict[str, Any]:
        done = self.total_tasks
        rate = 100.0 if done == 0 else 100.0 * (done - self.failed_tasks) / done
        return {
            "max_concurrent": max_concurrent,
            "active_tasks": active_tasks,
            "total_tasks": done,
            "failed_tasks": self.failed_tasks,
            "oom_errors": self.oom_errors,
            "success_rate": f"{rate:.1f}%",
            "retries": dict(self.retries),
        }


def merge(stats: list[RequestStats]) -> RequestStats:
    out = RequestStats()
    for s in stats:
        out.total_tasks += s.total_tasks
        out.failed_tasks += s.failed_tasks
        out.oom_errors += s.oom_errors
        for reason, n in s.retries.items():
            out.retries[reason] = out.retries.get(reason, 0) + n
    return out
