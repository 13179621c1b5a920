"""Carry one client request to a pod: wait for a slot, send, classify, retry elsewhere.

The asyncio shell around ``logic.pool.Pool``, and the only door into one: the app, the
sharder and live sessions call ``PoolRunner.forward`` / ``forward_stream``; discovery calls
``upsert_pod``, ``remove_pod``, ``reconfigure``, each of which hands the room it makes to
waiters itself. The runner turns the pool's tickets into futures (a queued request awaits
its grant; a timer expires the queue) and releases every slot granted exactly once, on
every path: success, error, timeout, cancellation, client disconnect. The decisions (which
pod, retry or give up) are the pool's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import Any

from asrpool_contract import transcript_stream as stream_events
from asrpool_contract.audio_answers import Logprob
from asrpool_contract.transcript_stream import OFFSET_FIELD
from asrpool_contract.wire import ERRORS, AsrpoolError, ErrorCode, parse_error

from .logic.audio_estimate import attempt_timeout_s
from .logic.chunking import ChunkingPolicy
from .logic.errors import AttemptResult, Outcome, OutcomeKind, classify
from .logic.pod_load import PodLoad
from .logic.pods import PodState
from .logic.pool import (
    Again,
    GiveUp,
    GiveUpReason,
    Granted,
    Pool,
    PoolPolicy,
    PoolSnapshot,
    Queued,
    Rejected,
    Slot,
)
from .logic.request import Priority
from .logic.rng import Rng
from .logic.stats import PoolStats, pool_stats
from .metrics import Accounting
from .transport import Answer, BufferedUpload, PodTransport

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One client request on its way to a pod."""

    path: str  # /v1/audio/transcriptions or /v1/audio/translations
    upload: BufferedUpload
    audio_seconds: float
    priority: Priority = Priority.INTERACTIVE
    # What the client asked for: a pod's 2xx answer must be a transcription in it.
    response_format: str = "json"
    # stream=true: the answer is relayed as events while the pod decodes (forward_stream).
    stream: bool = False


@dataclass(frozen=True)
class Timeouts:
    attempt_base_s: float
    attempt_cap_s: float


class PoolRunner:
    """One model's pool, its waiters and its timers, on one event loop.

    The runner makes its ``Pool`` and is the only one to hold it; the pool counts into the
    model's account in ``accounting``.
    """

    def __init__(
        self,
        model: str,
        policy: PoolPolicy,
        accounting: Accounting,
        transport: PodTransport,
        timeouts: Timeouts,
        *,
        rng: Rng | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = Pool(model, policy, rng=rng, account=accounting.account(model))
        self.accounting = accounting
        self.transport = transport
        self.timeouts = timeouts
        # Live sessions' chunking for this pool (ASRPool spec.realtime); None: the defaults.
        self.chunking: ChunkingPolicy | None = None
        self.clock = clock
        self._waiters: dict[int, asyncio.Future[Slot]] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def model(self) -> str:
        return self._pool.model

    # --- requests -------------------------------------------------------------------

    async def forward(self, job: Job) -> Answer:
        """The pod's successful answer, or ``AsrpoolError`` with the code the user should see.

        The slot held is released exactly once on every path: by ``release`` after a success,
        by ``retry`` after a failure, as cancelled when the client goes away mid-attempt.
        """
        started = self.clock()
        slot = await self._acquire(job.audio_seconds, job.priority)
        while True:
            try:
                timeout = self._attempt_timeout(job, slot)
                answer = await self.transport.send(slot.url, job.path, job.upload, timeout)
                outcome = classify(answer.result, job.response_format)
            except BaseException:
                self._release(slot, OutcomeKind.CANCELLED)
                raise
            if outcome.kind is OutcomeKind.OK:
                self._release(slot, outcome)
                self.accounting.answered(self.model, self.clock() - started)
                return answer
            log.info(
                "attempt %d of a request to %s failed on %s: %s",
                slot.attempt,
                self.model,
                slot.pod_id,
                outcome.kind.value,
            )
            next_slot = await self._retry(slot, outcome)
            if isinstance(next_slot, GiveUp):
                if next_slot.reason is not GiveUpReason.PERMANENT:
                    log.warning(
                        "giving up on a request to %s after %d attempt(s) on %d pod(s): %s (%s)",
                        self.model,
                        next_slot.attempts,
                        next_slot.pods_failed,
                        next_slot.reason.value,
                        next_slot.code.value,
                    )
                raise _final_error(next_slot, outcome, answer)
            slot = next_slot

    async def forward_stream(self, job: Job) -> AsyncGenerator[dict[str, Any], None]:
        """The client's events of a streamed transcription; ``AsrpoolError`` if it cannot go on.

        Before the first delta a failed attempt is retried as ``forward`` retries. After it,
        a pod lost mid-stream (killed, reset, hung, an error event) is replaced: the request
        goes on at another pod from where the last delta the client got ended (the worker's
        ``asrpool_end`` mark, sent back as ``asrpool_offset``), so the client sees neither an
        error nor a repeated word. The ``done`` event is ours: the deltas' text, the whole
        audio's usage, every logprob.
        """
        slot = await self._acquire(job.audio_seconds, job.priority)
        texts: list[str] = []
        logprobs: list[Logprob] = []
        output_tokens = 0
        offset = 0.0
        while True:
            upload = job.upload
            if offset > 0:
                upload = replace(upload, fields=[*upload.fields, (OFFSET_FIELD, f"{offset:.3f}")])
            timeout = self._attempt_timeout(job, slot)
            answer: Answer | None = None
            done: dict[str, Any] | None = None
            events = self.transport.stream(slot.url, job.path, upload)
            deadline = self.clock() + timeout
            try:
                async with contextlib.aclosing(events):
                    while True:
                        # The deadline bounds each wait for the pod, never our own yields: a
                        # timeout scope must not stay open while the client reads.
                        try:
                            async with asyncio.timeout(max(0.0, deadline - self.clock())):
                                event = await anext(events)
                        except StopAsyncIteration:
                            break
                        if isinstance(event, Answer):
                            answer = event
                            break
                        kind = event.get("type")
                        if kind == stream_events.DELTA and isinstance(event.get("delta"), str):
                            end = _pod_number(event.get(stream_events.END_MARK), offset)
                            marks = event.get("logprobs") or []
                            if end is None or end < offset or not isinstance(marks, list):
                                answer = _MALFORMED  # never relayed; resumed elsewhere from offset
                                break
                            texts.append(event["delta"])
                            logprobs.extend(marks)
                            offset = end
                            yield stream_events.for_client(event)
                        elif kind == stream_events.DONE:
                            usage = event.get("usage") or {}
                            tokens = _pod_number(
                                usage.get("output_tokens") if isinstance(usage, dict) else None, 0
                            )
                            if not isinstance(usage, dict) or tokens is None:
                                answer = _MALFORMED
                                break
                            done = event
                            break
                        elif kind == stream_events.ERROR:
                            answer = _error_event_answer(event)
                            break
            except TimeoutError:
                answer = Answer(AttemptResult(transport_error="deadline_timeout"))
            except BaseException:
                self._release(slot, OutcomeKind.CANCELLED)
                raise
            if done is not None:
                self._release(slot, Outcome.of(OutcomeKind.OK))
                usage = done.get("usage") or {}
                output_tokens += int(_pod_number(usage.get("output_tokens"), 0) or 0)
                yield stream_events.done(
                    "".join(texts),
                    audio_seconds=job.audio_seconds,
                    output_tokens=output_tokens,
                    logprobs=logprobs if "logprobs" in done else None,
                ) | _pods_usage(usage, output_tokens)
                return
            if answer is None:  # the stream ended without its done event: the pod went away
                answer = Answer(AttemptResult(transport_error="closed"))
            outcome = classify(answer.result, job.response_format)
            if outcome.kind is OutcomeKind.OK:  # a 2xx that was no stream: not what was asked
                outcome = Outcome.of(OutcomeKind.BAD_ANSWER, load=outcome.load)
            log.info(
                "streamed attempt %d to %s failed on %s after %.1fs of audio: %s",
                slot.attempt,
                self.model,
                slot.pod_id,
                offset,
                outcome.kind.value,
            )
            next_slot = await self._retry(slot, outcome)
            if isinstance(next_slot, GiveUp):
                raise _final_error(next_slot, outcome, answer)
            slot = next_slot

    def _attempt_timeout(self, job: Job, slot: Slot) -> float:
        """Grows with the audio, capped, and never past the request's deadline."""
        timeouts = self.timeouts
        by_audio = attempt_timeout_s(
            job.audio_seconds, base_s=timeouts.attempt_base_s, cap_s=timeouts.attempt_cap_s
        )
        return min(by_audio, max(1.0, slot.deadline - self.clock()))

    # --- slots ----------------------------------------------------------------------

    async def _acquire(self, audio_seconds: float, priority: Priority) -> Slot:
        """A slot for a new request: at once, after waiting, or ``AsrpoolError``."""
        queued_at = self.clock()
        answer = self._pool.submit(audio_seconds=audio_seconds, priority=priority, now=queued_at)
        if isinstance(answer, Granted):
            self.accounting.waited(self.model, 0.0)
            return answer.slot
        if isinstance(answer, Rejected):
            raise AsrpoolError(answer.code, retry_after_s=answer.retry_after_s)
        assert isinstance(answer, Queued)
        future = self._wait_for(answer.ticket)
        self._arm_timer()
        slot = await self._granted(answer.ticket, future)
        self.accounting.waited(self.model, self.clock() - queued_at)
        return slot

    async def _retry(self, slot: Slot, outcome: Outcome) -> Slot | GiveUp:
        """After a failed attempt: the request's next slot, or why it gives up."""
        verdict, grants = self._pool.retry(slot, outcome, self.clock())
        if isinstance(verdict, GiveUp):
            self._deliver(grants)
            return verdict
        assert isinstance(verdict, Again)
        # Registered before the grants go out: the request's own grant may be among them.
        future = self._wait_for(verdict.ticket)
        self._deliver(grants)
        return await self._granted(verdict.ticket, future)

    def _release(self, slot: Slot, outcome: Outcome | OutcomeKind) -> None:
        self._deliver(self._pool.release(slot, outcome, self.clock()))

    # --- pods (discovery and health checks): each change hands its new room to waiters ---

    def upsert_pod(
        self,
        pod_id: str,
        url: str,
        *,
        ready: bool = True,
        terminating: bool = False,
        load: PodLoad | None = None,
    ) -> None:
        grants = self._pool.upsert_pod(
            pod_id, url, ready=ready, terminating=terminating, now=self.clock(), load=load
        )
        self._deliver(grants)

    def remove_pod(self, pod_id: str) -> None:
        self._pool.remove_pod(pod_id)
        self._arm_timer()

    def reconfigure(self, policy: PoolPolicy) -> None:
        self._deliver(self._pool.reconfigure(policy, self.clock()))

    @property
    def policy(self) -> PoolPolicy:
        return self._pool.policy

    def pods(self) -> list[PodState]:
        """The pods, removed-but-draining ones included (read only)."""
        return self._pool.pods()

    def _wait_for(self, ticket: int) -> asyncio.Future[Slot]:
        future: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        return future

    async def _granted(self, ticket: int, future: asyncio.Future[Slot]) -> Slot:
        try:
            return await future
        except asyncio.CancelledError:
            self._waiters.pop(ticket, None)
            self._deliver(self._pool.cancel(ticket))
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(future.result(), OutcomeKind.CANCELLED)  # granted as we left
            raise

    def _deliver(self, grants: list[Granted]) -> None:
        for grant in grants:
            future = self._waiters.pop(grant.slot.ticket, None)
            if future is None or future.done():
                # Nobody waits for it any more: give it straight back.
                self._release(grant.slot, OutcomeKind.CANCELLED)
            else:
                future.set_result(grant.slot)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self._pool.next_wakeup()
        if wake is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, wake - self.clock())
        self._timer = loop.call_later(delay + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.clock()
        for expired in self._pool.expire(now):
            future = self._waiters.pop(expired.ticket, None)
            if future is not None and not future.done():
                future.set_exception(AsrpoolError(expired.code))
        self._deliver(self._pool.poll(now))

    # --- visibility -----------------------------------------------------------------

    def snapshot(self) -> PoolSnapshot:
        """The pool as of now (metrics read its load integrals up to now)."""
        return self._pool.snapshot(self.clock())

    def stats(self) -> PoolStats:
        """The pool's part of ``/stats``: its counts and its pods as of now."""
        return pool_stats(self.snapshot(), self._pool.account)


# A pod's event that is not what our workers send (a mark that is no number or goes back,
# logprobs that are no list, usage that is no object): the stream is not trusted further.
_MALFORMED = Answer(AttemptResult(status=200, body_text="malformed stream event"))


def _pod_number(value: object, default: float) -> float | None:
    """A number field of a pod's event: ``default`` when absent, None when it is not a
    finite number (a pod's bytes are checked, never trusted into ``float()``)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _error_event_answer(event: dict[str, Any]) -> Answer:
    """An ``error`` event in a pod's stream, as the error answer it stands for."""
    code, _message = parse_error(event)
    header = code.value if code is not None else None
    return Answer(AttemptResult(status=503, error_code_header=header, body_text=str(event)))


def _pods_usage(usage: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    """The last pod's count of the audio (it saw it all, offset included) with our tokens."""
    audio = usage.get("input_tokens")
    if not isinstance(audio, int):
        return {}
    return {
        "usage": {
            **usage,
            "output_tokens": output_tokens,
            "total_tokens": audio + output_tokens,
        }
    }


def _final_error(decision: GiveUp, outcome: Outcome, answer: Answer) -> AsrpoolError:
    code = decision.code
    if decision.reason is GiveUpReason.PERMANENT:
        if answer.content:
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
    tried = f"{decision.attempts} attempt(s) on {decision.pods_failed} server(s)"
    if decision.reason is GiveUpReason.DEADLINE:
        return AsrpoolError(
            ErrorCode.TIMEOUT,
            "The request could not be answered within its deadline (the queue timeout plus "
            f"the request timeout): {tried} failed, the last with {code.value}. "
            "Try again later, or send shorter audio.",
        )
    if decision.reason is GiveUpReason.ATTEMPTS:
        return AsrpoolError(
            code, f"{ERRORS[code].en} Gave up after {tried}, the most this pool allows."
        )
    return AsrpoolError(code, f"{ERRORS[code].en} Every server of the pool failed it ({tried}).")
