"""Realtime transcription sessions over WebSocket (record and transcribe at once).

One ``RealtimeSession`` per socket, made by the app's ``/v1/realtime`` route with the
router's pools (seen through ``Dispatcher``: resolve a model, forward a piece) and its
session slots. It speaks OpenAI's GA protocol, or the beta one to a
client that asks for it (``logic.realtime_protocol`` says how it tells them apart). It
parses client events, applies session updates field by field (``logic.realtime_settings``:
each refused field gets its own ``error``, the rest applies, and the update is always
answered), cuts the audio into utterances (``logic.chunking``)
and sends each piece through the same scheduler as uploads (``PoolRunner.forward``)
with realtime priority, so batch work never starves a live speaker and an OOM or a
lost pod retries the piece elsewhere. Partials run at most one at a time per
session (while one runs, only the newest that comes due waits; older ones are dropped);
finals run in order, each prompted with the session's recent final text so
wording and casing stay consistent across cuts.

Every task a session starts is cancelled when the socket goes away, and
``forward`` releases the slot of a cancelled attempt: a disconnect frees all.

Sessions are capped in total and per API key (``logic.session_slots``): past a cap the
client gets an ``error`` event and close code 1013 (try again later). A session whose
client sends nothing for ``idle_timeout_s`` (and waits for no result of ours) is told so
and closed with 1000. The session's slot comes back in a ``finally``, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from fastapi import WebSocket
from starlette.types import Message
from starlette.websockets import WebSocketState

from asrpool_contract.audio_form import DRAFT_FIELD, LIVE_FIELD
from asrpool_contract.wire import AsrpoolError, ErrorCode

from .auth import ApiKeyAuth, bearer_token
from .dispatch import Job
from .logic import realtime_protocol as proto
from .logic.chunking import (
    Chunker,
    ChunkingPolicy,
    Committed,
    PartialDue,
    SpeechStarted,
    SpeechStopped,
    TimeoutTriggered,
)
from .logic.pcm import WHISPER_RATE, samples_to_ms, to_whisper_rate, wav_bytes
from .logic.request import Priority
from .logic.session_slots import SessionSlots
from .transport import Answer, BufferedUpload

log = logging.getLogger(__name__)

KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."


@dataclass(frozen=True)
class SessionLimits:
    """What one session may ask of the pool."""

    # Audio may arrive this many times faster than real time, after a burst allowance.
    max_speed: float = 8.0
    burst_s: float = 10.0
    # Finals waiting to be transcribed; past this the client is told to slow down.
    max_pending_finals: int = 8
    # Recent final text passed as the next piece's prompt (Whisper reads ~224 tokens).
    prompt_chars: int = 400
    # No client message for this long (and no result pending) ends the session; 0: never.
    idle_timeout_s: float = 120.0


def offered_key(websocket: WebSocket) -> str | None:
    """The API key from ``Authorization: Bearer`` or the browser subprotocol."""
    token = bearer_token(websocket.headers.get("authorization"))
    if token:
        return token
    for proto_name in websocket.scope.get("subprotocols", []):
        if proto_name.startswith(KEY_SUBPROTOCOL_PREFIX):
            return proto_name[len(KEY_SUBPROTOCOL_PREFIX) :]
    return None


def chosen_subprotocol(websocket: WebSocket) -> str | None:
    """Browsers fail the handshake unless we pick one they offered; never echo the key."""
    offered = [
        p
        for p in websocket.scope.get("subprotocols", [])
        if not p.startswith(KEY_SUBPROTOCOL_PREFIX)
    ]
    if "realtime" in offered:
        return "realtime"
    return offered[0] if offered else None


class LivePool(Protocol):
    """What a session asks of the pool its model reaches (``dispatch.PoolRunner``)."""

    @property
    def model(self) -> str: ...

    @property
    def chunking(self) -> ChunkingPolicy | None: ...

    async def forward(self, job: Job) -> Answer: ...


class Dispatcher(Protocol):
    """Where a session's pieces go: the pool a model name reaches (``pools.PoolRegistry``)."""

    def resolve(self, model: str | None) -> LivePool: ...


class RealtimeSession:
    def __init__(
        self,
        websocket: WebSocket,
        pools: Dispatcher,
        sessions: SessionSlots,
        limits: SessionLimits | None = None,
    ) -> None:
        self.ws = websocket
        self.pools = pools
        self.sessions = sessions  # the router's cap on open sessions, in total and per key
        self.limits = limits or SessionLimits()
        self.id = "sess_" + secrets.token_hex(8)
        self.config = proto.SessionConfig(chunking=self._pool_chunking(None))
        self.chunker = Chunker(self.config.effective_chunking())
        self.dialect = proto.dialect_at_connect(
            websocket.headers.get("openai-beta"), websocket.scope.get("subprotocols", [])
        )
        self._send_lock = asyncio.Lock()
        self._finals: asyncio.Queue[Committed | None] = asyncio.Queue()
        self._partial: asyncio.Task[None] | None = None
        self._next_partial: PartialDue | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._previous_item: str | None = None
        self._completed: set[int] = set()
        self._shown: dict[int, str] = {}
        self._context = ""  # recent final text, the next piece's prompt
        self._started = time.monotonic()
        self._audio_s = 0.0
        self._final_running = False

    # --- lifecycle ------------------------------------------------------------------

    async def run(self, auth: ApiKeyAuth) -> None:
        await self.ws.accept(subprotocol=chosen_subprotocol(self.ws))
        try:
            auth.check(offered_key(self.ws))
        except AsrpoolError:
            await self._send(
                proto.error_event(
                    "unauthorized",
                    "Missing or wrong API key. Send 'Authorization: Bearer <key>' "
                    "or the subprotocol 'openai-insecure-api-key.<key>'.",
                    error_type="authentication_error",
                )
            )
            await self.ws.close(code=1008)
            return
        intent = self.ws.query_params.get("intent", "transcription")
        if intent != "transcription":
            await self._send(
                proto.error_event(
                    "unsupported_intent",
                    "This endpoint serves intent=transcription only.",
                    param="intent",
                )
            )
            await self.ws.close(code=1008)
            return
        # Counted per key only when keys are checked: with auth off every client is "no key".
        key = offered_key(self.ws) if auth.enabled else None
        refused = self.sessions.open(key)
        if refused is not None:
            log.info("realtime session refused: %s cap of %d reached", refused.cap, refused.allowed)
            await self._send(proto.session_limit_error(refused.cap, refused.allowed))
            await self.ws.close(code=proto.CLOSE_TRY_AGAIN_LATER)
            return
        try:
            self._spawn(self._final_worker())
            await self._send(proto.session_event("created", self.config, self.id, self.dialect))
            try:
                await self._receive_loop()
            finally:
                await self._shutdown()
        finally:
            self.sessions.close(key)

    async def _receive_loop(self) -> None:
        while True:
            message = await self._next_message()
            if message is None or message["type"] == "websocket.disconnect":
                return
            payload = message.get("text")
            if payload is None:
                payload = message.get("bytes") or b""
            try:
                event_id, command = proto.parse_event(payload, self.config, self._model_problem)
                await self._handle(command, event_id)
            except proto.ProtocolError as err:
                await self._send(proto.as_event(err))

    async def _next_message(self) -> Message | None:
        """The client's next message; None once an idle session was told so and closed."""
        idle_s = self.limits.idle_timeout_s or None
        while True:
            try:
                async with asyncio.timeout(idle_s):
                    return await self.ws.receive()
            except TimeoutError:
                if self._waiting_for_us():
                    continue  # the client waits for our results: that is not idle
                await self._send(proto.idle_timeout_error(self.limits.idle_timeout_s))
                with contextlib.suppress(Exception):  # it may have gone meanwhile
                    await self.ws.close(code=1000)
                return None

    def _waiting_for_us(self) -> bool:
        partial_running = self._partial is not None and not self._partial.done()
        return self._final_running or self._finals.qsize() > 0 or partial_running

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.info("realtime session %s closed after %.1fs of audio", self.id, self._audio_s)

    # --- commands -------------------------------------------------------------------

    async def _handle(self, command: proto.Command, event_id: str | None) -> None:
        if isinstance(command, proto.UpdateSession):
            # Every field that could be applied is; each refused one gets its own error,
            # and the update is always answered, so a client waiting for it never hangs.
            self.dialect = command.dialect
            for err in command.applied.errors:
                err.event_id = event_id
                await self._send(proto.as_event(err))
            config = command.applied.config
            if config.model != self.config.model and not config.chunking_chosen:
                config = replace(config, chunking=self._pool_chunking(config.model))
            if config.effective_chunking() != self.config.effective_chunking():
                await self._on_events(self.chunker.commit())
                self.chunker = Chunker(
                    config.effective_chunking(),
                    first_item=self.chunker.next_item,
                    position=self.chunker.position,
                )
            self.config = config
            await self._send(proto.session_event("updated", self.config, self.id, self.dialect))
        elif isinstance(command, proto.AppendAudio):
            rate = self.config.input_rate
            self._admit(command.samples.size / rate, event_id)
            samples = to_whisper_rate(command.samples, rate)
            await self._on_events(self.chunker.feed(samples))
        elif isinstance(command, proto.CommitAudio):
            events = self.chunker.commit()
            if not any(isinstance(e, Committed) for e in events):
                raise proto.ProtocolError(
                    "input_audio_buffer_commit_empty",
                    "There is no speech in the buffer to commit.",
                    event_id=event_id,
                )
            await self._on_events(events)
        elif isinstance(command, proto.ClearAudio):
            self.chunker.clear()
            await self._send(proto.cleared())

    def _model_problem(self, model: str) -> str | None:
        """Why ``model`` cannot serve this session (the registry's words), or None."""
        try:
            self.pools.resolve(model)
        except AsrpoolError as err:
            return str(err)
        return None

    def _pool_chunking(self, model: str | None) -> ChunkingPolicy:
        """The pool's live chunking (ASRPool spec.realtime), or the defaults."""
        try:
            chunking = self.pools.resolve(model).chunking
        except AsrpoolError:
            chunking = None  # no pool yet: a later update or the first piece will say
        return chunking if chunking is not None else ChunkingPolicy()

    def _admit(self, seconds: float, event_id: str | None) -> None:
        """Back-pressure: refuse audio faster than we promise to keep up with."""
        elapsed = time.monotonic() - self._started
        if self._audio_s + seconds > self.limits.burst_s + elapsed * self.limits.max_speed:
            raise proto.ProtocolError(
                "audio_too_fast",
                f"Audio is arriving more than {self.limits.max_speed:g}x faster than real time; "
                "this piece was dropped. Send audio at (or near) the pace it is recorded.",
                event_id=event_id,
            )
        if self._finals.qsize() >= self.limits.max_pending_finals:
            raise proto.ProtocolError(
                "transcription_backlog",
                "Too many utterances are waiting to be transcribed; this piece was dropped. "
                "Slow down or pause briefly.",
                event_id=event_id,
            )
        self._audio_s += seconds

    async def _on_events(self, events: list[Any]) -> None:
        for event in events:
            item_id = _item_id(self.id, event.item)
            if isinstance(event, SpeechStarted):
                await self._send(proto.speech_started(item_id, samples_to_ms(event.start)))
            elif isinstance(event, SpeechStopped):
                await self._send(proto.speech_stopped(item_id, samples_to_ms(event.end)))
            elif isinstance(event, TimeoutTriggered):
                start_ms, end_ms = samples_to_ms(event.start), samples_to_ms(event.end)
                await self._send(proto.timeout_triggered(item_id, start_ms, end_ms))
            elif isinstance(event, PartialDue):
                if self._partial is None or self._partial.done():
                    self._partial = self._spawn(self._run_partial(event))
                else:
                    self._next_partial = event  # the newest wins; older skipped ones are moot
            elif isinstance(event, Committed):
                if self._next_partial is not None and self._next_partial.item == event.item:
                    self._next_partial = None  # the final supersedes it
                await self._send(proto.committed(item_id, self._previous_item))
                self._previous_item = item_id
                self._finals.put_nowait(event)

    # --- transcription --------------------------------------------------------------

    async def _run_partial(self, event: PartialDue) -> None:
        """One partial at a time; when it ends, the newest one that came due meanwhile runs,
        so a loaded pool lowers the cadence instead of queueing stale partials."""
        while True:
            await self._one_partial(event)
            following, self._next_partial = self._next_partial, None
            if following is None:
                return
            event = following

    async def _one_partial(self, event: PartialDue) -> None:
        try:
            text = (await self._transcribe(event.audio, draft=True)).text
        except AsrpoolError:
            return  # a partial that fails is simply skipped; the final will retry
        if event.item in self._completed or not text:
            return
        shown = self._shown.get(event.item, "")
        append, self._shown[event.item] = proto.text_delta(shown, text)
        end_ms = samples_to_ms(event.start + event.audio.size)
        await self._send(proto.delta(_item_id(self.id, event.item), append, text, end_ms))

    async def _final_worker(self) -> None:
        while True:
            event = await self._finals.get()
            if event is None:
                return
            item_id = _item_id(self.id, event.item)
            self._final_running = True
            with_logprobs = self.config.include_logprobs
            try:
                final = await self._transcribe(event.audio, logprobs=with_logprobs)
            except AsrpoolError as err:
                self._completed.add(event.item)
                await self._send(proto.failed(item_id, err.code.value, str(err)))
                continue
            finally:
                self._final_running = False
            self._completed.add(event.item)
            self._shown.pop(event.item, None)
            text = final.text
            if text:
                self._context = (self._context + " " + text).strip()[-self.limits.prompt_chars :]
            seconds = event.audio.size / WHISPER_RATE
            await self._send(
                proto.completed(item_id, text, seconds, final.logprobs, with_logprobs=with_logprobs)
            )

    async def _transcribe(
        self, samples: np.ndarray, *, draft: bool = False, logprobs: bool = False
    ) -> proto.Final:
        runner = self.pools.resolve(self.config.model or None)
        fields = [("model", runner.model), ("response_format", "json")]
        # Our worker decodes a draft greedily on a short encoder context, and may read a
        # final (one utterance, cut at speech) on a short context too; other servers ignore
        # both fields.
        fields.append((DRAFT_FIELD, "true") if draft else (LIVE_FIELD, "true"))
        if logprobs:
            # OpenAI's form field; the worker answers OpenAI's list of {token, logprob, bytes}.
            fields.append(("include[]", "logprobs"))
        if self.config.language:
            fields.append(("language", self.config.language))
        prompt = " ".join(p for p in (self.config.whisper_prompt(), self._context) if p)
        if prompt:
            fields.append(("prompt", prompt))
        wav = wav_bytes(samples)
        job = Job(
            path="/v1/audio/transcriptions",
            upload=BufferedUpload("chunk.wav", "audio/wav", io.BytesIO(wav), len(wav), fields),
            audio_seconds=samples.size / WHISPER_RATE,
            priority=Priority.REALTIME,
        )
        answer = await runner.forward(job)
        try:
            return proto.final_answer(answer.content)
        except ValueError as exc:
            raise AsrpoolError(ErrorCode.INTERNAL_ERROR) from exc

    # --- plumbing -------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", "event_" + secrets.token_hex(6))
        if self.ws.client_state is not WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            with contextlib.suppress(Exception):  # the client may be gone; receive() will say
                await self.ws.send_text(json.dumps(event, ensure_ascii=False))


def _item_id(session_id: str, item: int) -> str:
    return f"item_{session_id[5:]}_{item:04d}"
