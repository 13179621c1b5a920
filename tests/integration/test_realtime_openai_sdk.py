"""The official ``openai`` SDK's realtime clients against `asrpool local` (real router, real
workers, the bundled model, espeak-ng speech).

GA through ``client.realtime.connect(extra_query={"intent": "transcription"})``, beta
through ``client.beta.realtime.connect(model=…, websocket_base_url=…)``, both with the API
key the pool generated. Every server event is validated against the SDK's own pydantic
types (``tests/support/openai_shapes.py``: the GA union for GA sessions, the beta union for
beta ones, and no field the types do not have unless asrpool documents it), so a drift
from OpenAI's shapes fails here.
"""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from openai.types.realtime import SessionCreatedEvent, SessionUpdatedEvent
from websockets.exceptions import ConnectionClosed

from tests.support import openai_shapes
from tests.support.procs import LocalPool
from tests.support.speech import word_error_rate

pytestmark = pytest.mark.slow

COMPLETED = "conversation.item.input_audio_transcription.completed"
# What a GA transcription session may see, and nothing else (no beta names).
GA_EVENTS = {
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered",
    "conversation.item.input_audio_transcription.delta",
    COMPLETED,
    "conversation.item.input_audio_transcription.failed",
    "error",
}
BETA_EVENTS = (GA_EVENTS - {"session.created", "session.updated"}) | {
    "transcription_session.created",
    "transcription_session.updated",
}
BETA_EVENTS.discard("input_audio_buffer.timeout_triggered")
LOGPROBS = "item.input_audio_transcription.logprobs"


def sdk(pool: LocalPool) -> OpenAI:
    return OpenAI(
        api_key=pool.api_key,
        base_url=f"{pool.url}/v1",
        websocket_base_url=pool.url.replace("http", "ws", 1) + "/v1",
        max_retries=0,
    )


def encoded(path: Path, encoding: str) -> bytes:
    """The clip as a client would send it: 24 kHz PCM16 (GA's rate), or G.711 at 8 kHz."""
    args = {
        "pcm": ["-r", "24000", "-e", "signed-integer", "-b", "16"],
        "pcmu": ["-r", "8000", "-e", "u-law", "-b", "8"],
        "pcma": ["-r", "8000", "-e", "a-law", "-b", "8"],
    }[encoding]
    done = subprocess.run(
        ["sox", str(path), "-t", "raw", *args, "-c", "1", "-"], capture_output=True, check=True
    )
    return done.stdout


# One second of silence in each encoding (G.711 codes zero as 0xFF and 0xD5).
SILENCE = {"pcm": b"\0\0" * 24_000, "pcmu": b"\xff" * 8_000, "pcma": b"\xd5" * 8_000}
BYTES_PER_SECOND = {"pcm": 48_000, "pcmu": 8_000, "pcma": 8_000}


class Events:
    """Every server event of a connection, raw, in order, read on a thread."""

    def __init__(self, recv_bytes: Callable[[], bytes], check: Callable[[dict], Any]) -> None:
        self.all: list[dict[str, Any]] = []
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._check = check
        self.problems: list[str] = []
        threading.Thread(target=self._read, args=(recv_bytes,), daemon=True).start()

    def _read(self, recv_bytes: Callable[[], bytes]) -> None:
        try:
            while True:
                event = json.loads(recv_bytes())
                try:
                    self._check(event)
                except Exception as exc:  # kept for the test to report with the event
                    self.problems.append(f"{event.get('type')}: {exc}")
                self.all.append(event)
                self._inbox.put(event)
        except ConnectionClosed:
            pass

    def wait_for(self, kind: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._inbox.get(timeout=left)
            except queue.Empty:
                break
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return event
        raise TimeoutError(f"no {kind} {match} in {timeout}s; got {self.types()}")

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.all if e["type"] == kind]

    def types(self) -> list[str]:
        return [e["type"] for e in self.all]

    def settle(self, timeout: float = 60.0) -> list[str]:
        """Wait until every committed item has its final; the transcripts, in order."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = len(self.of(COMPLETED)) + len(self.of(FAILED))
            if self.of("input_audio_buffer.committed") and done == len(
                self.of("input_audio_buffer.committed")
            ):
                return [e["transcript"] for e in self.of(COMPLETED)]
            time.sleep(0.1)
        raise TimeoutError(f"items never completed: {self.types()}")

    def assert_clean(self, allowed: set[str]) -> None:
        assert not self.problems, self.problems
        assert set(self.types()) <= allowed, sorted(set(self.types()) - allowed)


FAILED = "conversation.item.input_audio_transcription.failed"


def stream(append: Callable[..., None], audio: bytes, encoding: str, speed: float) -> None:
    """100 ms pieces at ``speed``× real time, then a second of silence to end the utterance."""
    step = BYTES_PER_SECOND[encoding] // 10
    started = time.monotonic()
    data = audio + SILENCE[encoding] * 2
    for n, offset in enumerate(range(0, len(data), step)):
        time.sleep(max(0.0, started + n * 0.1 / speed - time.monotonic()))
        append(audio=base64.b64encode(data[offset : offset + step]).decode())


@pytest.fixture
def ga(pool: LocalPool) -> Iterator[tuple[Any, Events]]:
    """A GA session opened by the SDK, as OpenAI's docs open one."""
    with sdk(pool).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        yield conn, Events(conn.recv_bytes, openai_shapes.ga)


def test_a_ga_sdk_session_gets_ga_events_only_each_of_the_sdks_types(ga, speech):
    conn, events = ga
    created = events.wait_for("session.created")
    assert isinstance(conn.parse_event(json.dumps(created)), SessionCreatedEvent)
    assert created["session"]["type"] == "transcription"
    conn.session.update(
        session={
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "noise_reduction": {"type": "near_field"},
                    "transcription": {"model": "whisper-1", "language": "en"},
                    "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
                }
            },
            "include": [LOGPROBS],
        }
    )
    raw = events.wait_for("session.updated")
    # What a GA client reads: the SDK's own event class (a beta name would not parse as one).
    assert isinstance(conn.parse_event(json.dumps(raw)), SessionUpdatedEvent)
    session = openai_shapes.ga(raw).session  # type: ignore[attr-defined]
    assert type(session).__name__ == "RealtimeTranscriptionSessionCreateRequest"
    audio_in = session.audio.input
    assert (audio_in.turn_detection.type, audio_in.turn_detection.eagerness) == (
        "semantic_vad",
        "high",
    )
    assert audio_in.noise_reduction.type == "near_field"
    assert session.include == [LOGPROBS]

    clip = speech["fox"]
    stream(conn.input_audio_buffer.append, encoded(clip.path, "pcm"), "pcm", speed=2.0)
    finals = events.settle()
    assert word_error_rate(clip.text, " ".join(finals)) < 0.35, finals
    events.assert_clean(GA_EVENTS)
    assert events.of("conversation.item.input_audio_transcription.delta"), events.types()
    for done in events.of(COMPLETED):
        assert done["usage"]["type"] == "duration" and done["usage"]["seconds"] > 0
        # Asked for: per word, in OpenAI's shape, from what the worker computes.
        assert done["logprobs"], done
        assert all(lp["logprob"] <= 0 and lp["token"] for lp in done["logprobs"])
    spoken = sum(e["usage"]["seconds"] for e in events.of(COMPLETED))
    assert 2.0 < spoken < 6.0  # the clip is ~3 s; the items hold it once, with their pauses


def test_a_ga_update_applies_every_field_it_can_and_names_each_it_cannot(ga):
    conn, events = ga
    events.wait_for("session.created")
    conn.send(
        {
            "type": "session.update",
            "event_id": "evt_mixed",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 16000},
                        "transcription": {"model": "large-v9", "language": "de", "prompt": "Hallo"},
                        "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
                    }
                },
            },
        }
    )
    updated = events.wait_for("session.updated")
    errors = events.of("error")
    assert {(e["error"]["param"], e["error"]["code"]) for e in errors} == {
        ("session.audio.input.format.rate", "invalid_sample_rate"),
        ("session.audio.input.transcription.model", "model_not_found"),
    }
    assert all(e["error"]["event_id"] == "evt_mixed" for e in errors)
    audio_in = updated["session"]["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_in["transcription"]["language"] == "de"
    assert audio_in["transcription"]["prompt"] == "Hallo"
    assert audio_in["transcription"]["model"] == "whisper-1"
    assert audio_in["turn_detection"]["type"] == "semantic_vad"
    assert audio_in["turn_detection"]["eagerness"] == "low"
    events.assert_clean(GA_EVENTS)


@pytest.mark.parametrize("encoding", ["pcmu", "pcma"])
def test_g711_audio_is_decoded_and_transcribed(ga, speech, encoding):
    conn, events = ga
    events.wait_for("session.created")
    conn.session.update(
        session={
            "type": "transcription",
            "audio": {"input": {"format": {"type": f"audio/{encoding}"}, "turn_detection": None}},
        }
    )
    updated = events.wait_for("session.updated")
    assert updated["session"]["audio"]["input"]["format"] == {"type": f"audio/{encoding}"}
    clip = speech["library"]
    stream(conn.input_audio_buffer.append, encoded(clip.path, encoding), encoding, speed=4.0)
    conn.input_audio_buffer.commit()
    final = events.wait_for(COMPLETED, timeout=60)
    # Telephone bandwidth costs tiny.en a little; the words are there.
    assert word_error_rate(clip.text, final["transcript"]) < 0.35, final["transcript"]
    events.assert_clean(GA_EVENTS)


def test_idle_timeout_gives_timeout_triggered_and_commits_the_quiet_stretch(ga):
    conn, events = ga
    events.wait_for("session.created")
    conn.session.update(
        session={
            "type": "transcription",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 1000}}},
        }
    )
    events.wait_for("session.updated")
    stream(conn.input_audio_buffer.append, SILENCE["pcm"], "pcm", speed=4.0)  # 3 s of quiet
    timeout = events.wait_for("input_audio_buffer.timeout_triggered")
    assert timeout["audio_end_ms"] - timeout["audio_start_ms"] >= 1000
    events.wait_for("input_audio_buffer.committed", item_id=timeout["item_id"])
    done = events.wait_for(COMPLETED, item_id=timeout["item_id"], timeout=60)
    assert done["usage"]["seconds"] >= 1.0
    events.assert_clean(GA_EVENTS)


def test_a_beta_sdk_session_keeps_the_beta_names(pool: LocalPool, speech):
    client = sdk(pool)
    with client.beta.realtime.connect(
        model="whisper-1", extra_query={"intent": "transcription"}
    ) as conn:
        events = Events(conn.recv_bytes, openai_shapes.beta)
        events.wait_for("transcription_session.created")
        conn.transcription_session.update(
            session={
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                "include": [LOGPROBS],
            }
        )
        updated = events.wait_for("transcription_session.updated")
        assert updated["session"]["input_audio_transcription"]["language"] == "en"
        clip = speech["fox"]
        stream(conn.input_audio_buffer.append, encoded(clip.path, "pcm"), "pcm", speed=2.0)
        finals = events.settle()
    assert word_error_rate(clip.text, " ".join(finals)) < 0.35, finals
    events.assert_clean(BETA_EVENTS)
    assert not [t for t in events.types() if t.startswith("session.")]
    assert all(e["usage"]["type"] == "duration" for e in events.of(COMPLETED))
