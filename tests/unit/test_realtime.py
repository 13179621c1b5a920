"""RealtimeSession (realtime.py) over a fake pod transport: a committed utterance is sent to
the pool and comes back completed; a client that leaves mid-transcription frees its slot.

The socket is Starlette's in-process test client, the pools and runner are the real ones,
only ``PodTransport`` is faked (``tests/support/fake_pods.py``): no model, no network.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.testclient import WebSocketTestSession

from asrpool_contract.audio_form import DRAFT_FIELD, LIVE_FIELD
from asrpool_router.auth import ApiKeyAuth
from asrpool_router.dispatch import PoolRunner, Timeouts
from asrpool_router.logic.pool import PoolPolicy
from asrpool_router.logic.session_slots import SessionSlots
from asrpool_router.metrics import Accounting
from asrpool_router.pools import PoolRegistry
from asrpool_router.realtime import RealtimeSession
from tests.support.fake_pods import TEXT, FakePods, Hold

COMPLETED = "conversation.item.input_audio_transcription.completed"
MODEL = "tiny.en"


def router_over(fake: FakePods) -> tuple[FastAPI, PoolRunner]:
    """A router's realtime route, and nothing else, over ``fake``'s one pod."""
    accounting = Accounting(CollectorRegistry())
    pools = PoolRegistry(
        lambda model: PoolPolicy(per_pod=1),
        lambda model, policy: PoolRunner(model, policy, accounting, fake, Timeouts(30, 300)),
    )
    runner = pools.ensure(MODEL)
    runner.upsert_pod("a", "http://a")
    app = FastAPI()

    @app.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        session = RealtimeSession(websocket, pools, SessionSlots(4, 4))
        await session.run(ApiKeyAuth(False, ()))

    return app, runner


def one_second_of_tone() -> str:
    t = np.arange(16_000) / 16_000
    return base64.b64encode((8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()).decode()


def events_until(ws: WebSocketTestSession, kind: str) -> Iterator[dict[str, Any]]:
    while True:
        event = ws.receive_json()
        yield event
        if event["type"] == kind:
            return


def connect(client: TestClient) -> Any:
    """A socket to /v1/realtime that speaks the beta dialect (it may declare 16 kHz)."""
    return client.websocket_connect(
        "/v1/realtime?intent=transcription", headers={"OpenAI-Beta": "realtime=v1"}
    )


def start(ws: WebSocketTestSession) -> None:
    """Commit by hand (no server VAD): one second of audio, one utterance."""
    assert ws.receive_json()["type"] == "transcription_session.created"
    session = {"input_audio_sample_rate": 16_000, "turn_detection": None}
    ws.send_json({"type": "transcription_session.update", "session": session})
    assert ws.receive_json()["type"] == "transcription_session.updated"
    ws.send_json({"type": "input_audio_buffer.append", "audio": one_second_of_tone()})
    ws.send_json({"type": "input_audio_buffer.commit"})


def test_a_committed_utterance_is_transcribed_by_the_pool_and_completed() -> None:
    fake = FakePods()
    app, runner = router_over(fake)
    with TestClient(app) as client, connect(client) as ws:
        start(ws)
        *_, completed = events_until(ws, COMPLETED)
    assert completed["transcript"] == TEXT
    assert completed["usage"] == {"type": "duration", "seconds": 1.0}
    final = fake.attempts[-1]
    assert final.pod == "http://a"
    assert ("model", MODEL) in final.fields and ("response_format", "json") in final.fields
    assert (DRAFT_FIELD, "true") not in final.fields  # a final is decoded in full
    assert (LIVE_FIELD, "true") in final.fields  # one utterance: our worker may shorten it
    assert runner.snapshot().in_flight == 0


def test_a_client_leaving_mid_transcription_gives_the_slot_back() -> None:
    fake = FakePods(Hold())  # the pod never answers the first piece
    app, runner = router_over(fake)
    with TestClient(app) as client:
        with connect(client) as ws:
            start(ws)
            assert fake.arrived.wait(timeout=5)
            assert runner.snapshot().in_flight == 1
        # The socket closed: the session cancels its tasks, and the runner frees the slot.
        deadline = time.monotonic() + 5
        while runner.snapshot().in_flight and time.monotonic() < deadline:
            time.sleep(0.001)
        assert (runner.snapshot().in_flight, runner.snapshot().queue_depth) == (0, 0)
