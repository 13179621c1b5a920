"""Realtime sessions over WebSocket through `asrpool local`: order, accuracy, load, abuse.

How fast and how often (first text, partial cadence, partials per session under load) is
measured in bench/realtime_latency.py, not asserted here: timings on shared cores say more
about the neighbours than about us. The tests hold what must be true at any speed: partials
come after their utterance started and before its final, append-only deltas add up to what
they show, finals match the audio.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.procs import LocalPool
from tests.support.realtime_client import (
    COMPLETED,
    DELTA,
    FAILED,
    Session,
    open_session,
    read_wav16,
)
from tests.support.speech import word_error_rate

pytestmark = pytest.mark.slow


def assert_pool_idle(pool: LocalPool, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        stats = httpx.get(f"{pool.url}/stats", headers=pool.auth).json()
        if stats["active_tasks"] == 0 and stats["queue_depth"] == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"slots still held: {stats['active_tasks']} active, {stats['queue_depth']} queued"
            )
        time.sleep(0.1)


def partials_by_item(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Each item's partials (delta events), checking their order against the item's own
    events on the way: after its ``speech_started``, before its final (completed or failed),
    never empty, and each non-empty ``delta`` appends to what the earlier ones showed."""
    started: dict[str, int] = {}  # item → its speech_started's audio_start_ms
    ended: set[str] = set()
    deltas: dict[str, list[dict[str, Any]]] = {}
    for received in session.events:
        event = received.event
        kind, item = event["type"], event.get("item_id")
        if kind == "input_audio_buffer.speech_started":
            started[item] = event["audio_start_ms"]
        elif kind == DELTA:
            assert item in started, f"a partial of {item} before its speech started"
            assert item not in ended, f"a partial of {item} after its final"
            assert event["partial_transcript"], f"an empty partial of {item}"
            # Where the audio it read ends: past the item's start, later with each partial.
            read_to = [d["audio_end_ms"] for d in deltas.get(item, [])] or [started[item]]
            assert event["audio_end_ms"] > read_to[-1], (event, read_to)
            shown = "".join(d["delta"] for d in deltas.get(item, []))
            if event["delta"]:
                assert event["partial_transcript"] == shown + event["delta"], event
            deltas.setdefault(item, []).append(event)
        elif kind in (COMPLETED, FAILED):
            ended.add(item)
    assert set(deltas) <= ended, "a partial of an item that never got its final"
    return deltas


def offline_text(pool: LocalPool, path) -> str:
    resp = httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        headers=pool.auth,
        timeout=120,
        files={"file": (path.name, path.read_bytes())},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["text"]


def test_live_stream_gives_partials_before_the_final_and_an_accurate_final(pool: LocalPool, speech):
    clip = speech["long"]
    session = open_session(pool.url, pool.api_key)
    session.stream(read_wav16(clip.path), speed=1.0)
    finals = session.finish()
    session.close()

    partials = partials_by_item(session)
    completed = [r.event["item_id"] for r in session.of(COMPLETED)]
    # Text while the first sentence is still spoken: its partials came before its final.
    assert partials.get(completed[0]), f"no partial before the first final: {completed[0]}"

    live = " ".join(finals)
    live_wer = word_error_rate(clip.text, live)
    offline_wer = word_error_rate(clip.text, offline_text(pool, clip.path))
    print(f"live WER {live_wer:.3f}, offline WER {offline_wer:.3f}, {len(finals)} finals")
    print(f"{sum(map(len, partials.values()))} partials over {len(partials)} items")
    assert live_wer <= offline_wer + 0.05
    assert len(finals) >= 4  # cut at the pauses between sentences, not once at the end
    assert_pool_idle(pool)


def test_items_follow_the_openai_event_order(pool: LocalPool, speech):
    session = open_session(pool.url, pool.api_key)
    session.stream(read_wav16(speech["fox"].path), speed=2.0)
    finals = session.finish()
    session.close()
    kinds = [r.event["type"] for r in session.events]
    started = kinds.index("input_audio_buffer.speech_started")
    stopped = kinds.index("input_audio_buffer.speech_stopped")
    committed = kinds.index("input_audio_buffer.committed")
    done = kinds.index(COMPLETED)
    assert started < stopped < committed < done
    item = session.of(COMPLETED)[0].event["item_id"]
    assert all(r.event["item_id"] == item for r in session.of(DELTA))
    assert set(partials_by_item(session)) <= {item}  # and every partial in its place
    assert "fox" in finals[0].lower()


def test_four_sessions_and_a_batch_upload_all_complete_none_starved(pool: LocalPool, speech):
    names = ["meeting", "library", "office", "station"]

    def live(name: str) -> tuple[str, list[str], dict[str, list[dict[str, Any]]]]:
        clip = speech[name]
        s = open_session(pool.url, pool.api_key)
        s.stream(np.concatenate([read_wav16(clip.path)] * 3), speed=1.0)
        finals = s.finish(timeout=120)
        s.close()
        return clip.text, finals, partials_by_item(s)

    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        batch = ex.submit(offline_text, pool, speech["long"].path)
        results = list(ex.map(live, names))
        assert len(batch.result(timeout=180).split()) > 30
    for text, finals, partials in results:
        assert finals, "every session got its finals"
        assert word_error_rate(f"{text} {text} {text}", " ".join(finals)) < 0.35
        # Not starved: every session got partials, each before its item's final (how many
        # is bench/realtime_latency.py's to measure: --streams 4 --with-upload).
        assert partials, "a session got no partial at all"
        print(f"session: {sum(map(len, partials.values()))} partials over {len(partials)} items")
    assert_pool_idle(pool)


def test_abuse_gets_error_events_and_the_session_survives(pool: LocalPool, speech):
    s = open_session(pool.url, pool.api_key)
    s.ws.send(b"\x00\xff garbage bytes")
    s.wait_for("error", code="invalid_json")
    s.ws.send("{ not json")
    s.wait_for("error", code="invalid_json")
    s.send({"type": "response.create"})
    s.wait_for("error", code="unknown_event")
    s.send({"type": "input_audio_buffer.append", "audio": "***not base64***", "event_id": "e9"})
    bad = s.wait_for("error", code="invalid_audio")
    assert bad["error"]["event_id"] == "e9"
    s.send({"type": "transcription_session.update", "session": {"input_audio_sample_rate": 8000}})
    assert s.wait_for("error", code="invalid_sample_rate")["error"]["param"] == (
        "session.input_audio_sample_rate"
    )
    # The refused update is still answered, with the settings in force: nobody waits forever.
    updated = s.wait_for("transcription_session.updated")
    assert updated["session"]["input_audio_sample_rate"] == 16000
    s.send(
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(b"\0" * (3 * 2**20)).decode(),
        }
    )
    s.wait_for("error", code="append_too_large")
    s.send({"type": "input_audio_buffer.commit"})
    s.wait_for("error", code="input_audio_buffer_commit_empty")
    s.send(
        {
            "type": "transcription_session.update",
            "session": {"input_audio_transcription": {"model": "large-v9", "language": "en"}},
        }
    )
    s.wait_for("error", code="model_not_found")
    # Only the model was refused: the language in the same update took.
    updated = s.wait_for("transcription_session.updated")
    assert updated["session"]["input_audio_transcription"]["language"] == "en"
    # Still alive: real speech is transcribed.
    s.stream(read_wav16(speech["fox"].path), speed=2.0)
    finals = s.finish()
    assert "fox" in " ".join(finals).lower()
    s.close()
    assert_pool_idle(pool)


def test_audio_far_faster_than_real_time_is_refused_with_an_error_event(pool: LocalPool, speech):
    s = open_session(pool.url, pool.api_key)
    loud = np.tile(read_wav16(speech["long"].path), 2)  # ~55 s of speech, sent at once
    for offset in range(0, loud.size, 16_000):
        s.append(loud[offset : offset + 16_000])
    too_fast = s.wait_for("error", code="audio_too_fast", timeout=30)
    assert "faster than real time" in too_fast["error"]["message"]
    assert not s.closed.is_set()
    s.close()
    assert_pool_idle(pool, within_s=60)


def test_disconnect_mid_utterance_frees_every_slot(pool: LocalPool, speech):
    s = open_session(pool.url, pool.api_key)
    s.stream(read_wav16(speech["long"].path)[: int(16_000 * 2.5)], speed=1.0)  # mid-sentence
    s.wait_for(DELTA, timeout=30)
    s.ws.close()
    assert_pool_idle(pool)
    # And the pool still serves.
    assert "fox" in offline_text(pool, speech["fox"].path).lower()


def test_auth_by_header_or_browser_subprotocol_and_refusal_in_words(pool: LocalPool, speech):
    by_subprotocol = open_session(pool.url, pool.api_key, subprotocol_key=True)
    assert by_subprotocol.ws.subprotocol == "realtime"
    by_subprotocol.close()

    from websockets.sync.client import connect

    with connect(
        pool.url.replace("http", "ws") + "/v1/realtime?intent=transcription",
        additional_headers={"Authorization": "Bearer wrong"},
        open_timeout=10,
    ) as ws:
        event = json.loads(ws.recv(timeout=10))
        assert event["type"] == "error" and event["error"]["code"] == "unauthorized"
        assert "API key" in event["error"]["message"]
        with pytest.raises(ConnectionClosed):  # the server closed the socket
            ws.recv(timeout=10)
        assert ws.close_code == 1008


def test_manual_commit_mode_transcribes_what_was_sent(pool: LocalPool, speech):
    s = open_session(pool.url, pool.api_key, turn_detection=None)
    s.stream(read_wav16(speech["library"].path), speed=4.0)
    s.send({"type": "input_audio_buffer.commit"})
    final = s.wait_for(COMPLETED, timeout=60)
    assert word_error_rate(speech["library"].text, final["transcript"]) < 0.2
    assert not s.of("input_audio_buffer.speech_started")  # no VAD events in manual mode
    s.close()


def test_stream_command_prints_finals_as_lines(pool: LocalPool, speech):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asrpool",
            "stream",
            str(speech["long"].path),
            "--fast",
            "--url",
            pool.url,
            "--api-key",
            pool.api_key,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    assert len(lines) >= 4
    assert word_error_rate(speech["long"].text, " ".join(lines)) < 0.2


def test_stream_from_a_microphone_needs_arecord_and_says_so(pool: LocalPool, tmp_path):
    import os

    # A PATH without arecord (CI machines have no sound card): the command explains itself.
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asrpool",
            "stream",
            "--mic",
            "--url",
            pool.url,
            "--api-key",
            pool.api_key,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0
    assert "arecord" in done.stderr and "alsa-utils" in done.stderr
