"""Carry one client request to a pod: wait for a slot, send, classify, retry elsewhere.

The asyncio shell around ``logic.pool.Pool``. ``PoolRunner`` turns the pool's
tickets into futures (a queued request awaits its grant; a timer expires the
queue) and guarantees that every slot granted is released exactly once, on
every path: success, error, timeout, cancellation, client disconnect. The
decisions (which pod, retry or not, how long to back off) are the pool's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from asrpool.wire import AsrpoolError, ErrorCode, parse_error

from .logic.audio_estimate import attempt_timeout_s
from .logic.chunking import ChunkingPolicy
from .logic.errors import Outcome, OutcomeKind, classify
from .logic.pool import Granted, Pool, Queued, Rejected, Slot
from .logic.request import Priority
from .logic.retry import Backoff, GiveUp, RetryNow
from .logic.stats import RequestStats
from .metrics import RouterMetrics
from .transport import Answer, BufferedUpload, send

log = logging.getLogger(__name__)


class PoolRunner:
    """One model's pool, its waiters and its timers, on one event loop."""

    def __init__(
        self, pool: Pool, metrics: RouterMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.stats = RequestStats()
        # Live sessions' chunking for this pool (ASRPool spec.realtime); None: the defaults.
        self.chunking: ChunkingPolicy | None = None
        self._clock = clock
        self._waiters: dict[int, asyncio.Future[Slot]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def model(self) -> str:
        return self.pool.model

    # --- slots ----------------------------------------------------------------------

    async def acquire(
        self, audio_seconds: float, priority: Priority, exclude: frozenset[str]
    ) -> Slot:
        queued_at = self._clock()
        answer = self.pool.submit(
            audio_seconds=audio_seconds, priority=priority, now=queued_at, exclude=exclude
        )
        if isinstance(answer, Granted):
            self.metrics.queue_wait.labels(self.model).observe(0.0)
            return answer.slot
        if isinstance(answer, Rejected):
            raise AsrpoolError(answer.code, retry_after_s=answer.retry_after_s)
        assert isinstance(answer, Queued)
        future: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters[answer.ticket] = future
        self._arm_timer()
        try:
            slot = await future
        except asyncio.CancelledError:
            self._waiters.pop(answer.ticket, None)
            self._deliver(self.pool.cancel(answer.ticket))
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result(), OutcomeKind.CANCELLED)  # granted as we left
            raise
        self.metrics.queue_wait.labels(self.model).observe(self._clock() - queued_at)
        return slot

    def release(self, slot: Slot, outcome: Outcome | OutcomeKind) -> None:
        self._deliver(self.pool.release(slot, outcome, self._clock()))

    def pods_changed(self, grants: list[Granted]) -> None:
        """Discovery changed the pods; hand any new room to waiters."""
        self._deliver(grants)

    def _deliver(self, grants: list[Granted]) -> None:
        for grant in grants:
            future = self._waiters.pop(grant.slot.ticket, None)
            if future is None or future.done():
                # Nobody waits for it any more: give it straight back.
                self.release(grant.slot, OutcomeKind.CANCELLED)
            else:
                future.set_result(grant.slot)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self.pool.next_wakeup()
        if wake is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, wake - self._clock())
        self._timer = loop.call_later(delay + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._clock()
        expired = self.pool.expire(now)
        if expired:
            # Waiting while no pod could serve at all is an outage, not a busy pool: say so.
            no_pods = self.pool.snapshot(now)["capacity"] == 0
            code = ErrorCode.SERVICE_UNAVAILABLE if no_pods else ErrorCode.QUEUE_TIMEOUT
        for ticket in expired:
            future = self._waiters.pop(ticket, None)
            if future is not None and not future.done():
                future.set_exception(AsrpoolError(code))
        self._deliver(self.pool.poll(now))

    # --- visibility -----------------------------------------------------------------

    def pool_snapshot(self) -> dict[str, Any]:
        """The pool's own snapshot as of now (metrics read its load integrals up to now)."""
        return self.pool.snapshot(self._clock())

    def snapshot(self) -> dict[str, object]:
        snap = self.pool.snapshot(self._clock())
        max_concurrent = sum(int(p["budget"]) for p in snap["pods"] if p["accepting"])
        return {
            **self.stats.view(max_concurrent=max_concurrent, active_tasks=snap["in_flight"]),
            "model": self.model,
            "queue_depth": snap["queue_depth"],
            "queue_by_priority": snap["queue_by_priority"],
            "pods": [
                {
                    "id": p["id"],
                    "url": p["url"],
                    "ready": p["ready"],
                    "budget": p["budget"],
                    "max_budget": p["budget_ceiling"],
                    "in_flight": p["in_flight"],
                    "in_flight_audio_seconds": round(p["in_flight_audio_seconds"], 1),
                    "ejected": p["ejected"],
                    "terminating": p["terminating"],
                }
                for p in snap["pods"]
            ],
        }


@dataclass
class Job:
    """One client request on its way to a pod."""

    path: str  # /v1/audio/transcriptions or /v1/audio/translations
    upload: BufferedUpload
    audio_seconds: float
    priority: Priority = Priority.INTERACTIVE
    tried: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Timeouts:
    attempt_base_s: float
    attempt_cap_s: float


async def forward(
    runner: PoolRunner,
    job: Job,
    client: httpx.AsyncClient,
    timeouts: Timeouts,
    rng: random.Random,
) -> Answer:
    """The pod's successful answer, or ``AsrpoolError`` with the code the user should see."""
    pool = runner.pool
    attempt = 0
    started = time.monotonic()
    while True:
        attempt += 1
        slot = await runner.acquire(job.audio_seconds, job.priority, frozenset(job.tried))
        outcome = Outcome.of(OutcomeKind.CANCELLED)
        try:
            timeout = attempt_timeout_s(
                job.audio_seconds, base_s=timeouts.attempt_base_s, cap_s=timeouts.attempt_cap_s
            )
            answer = await send(client, slot.url, job.path, job.upload, timeout)
            outcome = classify(answer.result)
        finally:
            runner.release(slot, outcome)
        if outcome.kind is OutcomeKind.OK:
            runner.metrics.latency.labels(runner.model).observe(time.monotonic() - started)
            return answer
        runner.stats.attempt_failed(outcome.kind.value)
        if outcome.kind is OutcomeKind.OOM:
            runner.metrics.oom.labels(runner.model, slot.pod_id).inc()
        job.tried.add(slot.pod_id)
        decision = pool.retry_decision(
            outcome,
            attempt=attempt,
            pod_id=slot.pod_id,
            tried=frozenset(job.tried),
            now=time.monotonic(),
        )
        if isinstance(decision, GiveUp):
            log.info(
                "giving up after %d attempt(s) on %s: %s", attempt, runner.model, decision.code
            )
            raise _final_error(decision.code, outcome, answer)
        runner.stats.retried(outcome.kind.value)
        if isinstance(decision, RetryNow):
            runner.metrics.retries.labels(runner.model, outcome.kind.value, "failover").inc()
            continue
        assert isinstance(decision, Backoff)
        runner.metrics.retries.labels(runner.model, outcome.kind.value, "backoff").inc()
        # Every pod was tried or is full: after the pause any pod may be tried again.
        job.tried.clear()
        await asyncio.sleep(decision.seconds)


def _final_error(code: ErrorCode, outcome: Outcome, answer: Answer) -> AsrpoolError:
    if outcome.kind is OutcomeKind.PERMANENT and answer.content:
        # Our worker's words for bad input name the problem and the parameter: relay them.
        try:
            body = json.loads(answer.content)
        except ValueError:
            body = None
        parsed_code, message = parse_error(body)
        if parsed_code is code and message:
            param = body["error"].get("param") if isinstance(body, dict) else None
            return AsrpoolError(code, message, param=param if isinstance(param, str) else None)
    return AsrpoolError(code)
