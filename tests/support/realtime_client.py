"""A small realtime client for tests: sends PCM at a chosen pace, records events with times.

It speaks the beta dialect (it says so with the ``OpenAI-Beta: realtime=v1`` header, or the
``openai-beta.realtime-v1`` subprotocol), because only beta can declare asrpool's 16 kHz
PCM16, the rate of the test clips. The GA dialect is tested through the ``openai`` SDK
itself (test_realtime_openai_sdk.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
FAILED = "conversation.item.input_audio_transcription.failed"


def read_wav16(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 16_000 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@dataclass
class Received:
    at: float
    event: dict[str, Any]


@dataclass
class Session:
    ws: ClientConnection
    _stack: contextlib.ExitStack
    events: list[Received] = field(default_factory=list)
    inbox: queue.Queue[Received] = field(default_factory=queue.Queue)
    closed: threading.Event = field(default_factory=threading.Event)
    close_code: int | None = None

    def start(self) -> Session:
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        try:
            for raw in self.ws:
                got = Received(time.monotonic(), json.loads(raw))
                self.events.append(got)
                self.inbox.put(got)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    def send(self, event: dict[str, Any]) -> None:
        self.ws.send(json.dumps(event))

    def append(self, samples: np.ndarray) -> None:
        self.send(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(samples.astype("<i2").tobytes()).decode(),
            }
        )

    def wait_for(self, kind: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        """The next event of ``kind`` (matching fields) after those already taken."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no {kind} {match} within {timeout}s; got "
                    f"{[r.event['type'] for r in self.events]}"
                )
            try:
                got = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if got.event["type"] == kind and all(
                (got.event.get(k) if k != "code" else got.event.get("error", {}).get("code")) == v
                for k, v in match.items()
            ):
                return got.event

    def of(self, kind: str) -> list[Received]:
        return [r for r in self.events if r.event["type"] == kind]

    def stream(self, samples: np.ndarray, speed: float = 1.0, piece_s: float = 0.1) -> float:
        """Send at ``speed``× real time; returns when the first piece went out."""
        step = int(16_000 * piece_s)
        started = time.monotonic()
        for n, offset in enumerate(range(0, samples.size, step)):
            time.sleep(max(0.0, started + n * piece_s / speed - time.monotonic()))
            self.append(samples[offset : offset + step])
        return started

    def finish(self, timeout: float = 60.0) -> list[str]:
        """Commit what is left, wait until every committed item completed; the finals."""
        self.append(np.zeros(16_000, dtype=np.int16))  # a pause closes the last utterance
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = len(self.of("input_audio_buffer.committed"))
            done = len(self.of(COMPLETED)) + len(self.of(FAILED))
            if committed and committed == done and not self._speech_open():
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"items never completed: {[r.event['type'] for r in self.events]}")
        return [r.event["transcript"] for r in self.of(COMPLETED)]

    def _speech_open(self) -> bool:
        return len(self.of("input_audio_buffer.speech_started")) > len(
            self.of("input_audio_buffer.committed")
        )

    def close(self) -> None:
        self._stack.close()


def open_session(
    url: str,
    api_key: str | None = None,
    *,
    rate: int = 16_000,
    subprotocol_key: bool = False,
    **session: Any,
) -> Session:
    ws_url = url.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    headers = {}
    subprotocols = None
    if api_key and subprotocol_key:
        subprotocols = ["realtime", f"openai-insecure-api-key.{api_key}", "openai-beta.realtime-v1"]
    else:
        headers["OpenAI-Beta"] = "realtime=v1"
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
    stack = contextlib.ExitStack()
    ws = stack.enter_context(
        connect(
            ws_url,
            additional_headers=headers,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            max_size=2**22,
            open_timeout=10,
        )
    )
    s = Session(ws, stack).start()
    s.wait_for("transcription_session.created", timeout=10)
    s.send(
        {
            "type": "transcription_session.update",
            "session": {"input_audio_sample_rate": rate, **session},
        }
    )
    s.wait_for("transcription_session.updated", timeout=10)
    return s
