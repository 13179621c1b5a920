"""Clients for the realtime peers' own protocols (bench/realtime_peers.py), in our venv.

Each streams 16 kHz mono PCM at real-time pace in 100 ms pieces, as ``tests/support/
realtime_client.py`` does for asrpool, and records when the text it would show changed:

* **WhisperLive** (``whisper-live``): a websocket at ``/``; the first message is the session
  options (uid, language, task, model, use_vad), then float32 samples as binary frames, then
  ``END_OF_AUDIO`` (after silence until its text settles: it drops what it has not decoded
  by then). The server answers ``SERVER_READY`` and then, after each decode, the last
  segments (``{"segments": [{start, end, text, completed}]}``); it closes after its finalizer.
* **WhisperLiveKit** (``whisperlivekit``, started with ``--pcm-input``): a websocket at
  ``/asr``; raw s16le as binary frames, an empty frame to end; the server sends
  ``{"type": "config"}``, then the transcript so far (``lines`` of committed text and a
  ``buffer_transcription`` still being decided) and finally ``{"type": "ready_to_stop"}``.

"Partial" for a peer: a message whose shown text differs from the one before (asrpool's
partials are its ``…transcription.delta`` events).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

PIECE_S = 0.1
RATE = 16_000


@dataclass
class Stream:
    started: float = 0.0  # when the first piece went out (monotonic)
    updates: list[float] = field(default_factory=list)  # when the shown text changed
    final_text: str = ""
    error: str | None = None


def _pace(ws: ClientConnection, samples: np.ndarray, encode: Any, stream: Stream) -> None:
    step = int(RATE * PIECE_S)
    stream.started = time.monotonic()
    for n, offset in enumerate(range(0, samples.size, step)):
        time.sleep(max(0.0, stream.started + n * PIECE_S - time.monotonic()))
        ws.send(encode(samples[offset : offset + step]))


def whisperlive(url: str, samples: np.ndarray, model: str, timeout_s: float = 300) -> Stream:
    """One WhisperLive session (``url`` ws://host:port)."""
    stream = Stream()
    segments: dict[str, str] = {}  # start → text: the server resends its last segments
    shown = ""
    with connect(url, open_timeout=30, max_size=2**22) as ws:
        options = {
            "uid": str(uuid.uuid4()), "language": "en", "task": "transcribe", "model": model,
            "use_vad": True, "send_last_n_segments": 10,
        }  # fmt: skip
        ws.send(json.dumps(options))
        ready = json.loads(ws.recv(timeout=timeout_s))
        if ready.get("message") != "SERVER_READY":
            stream.error = f"not ready: {ready}"
            return stream
        done = threading.Event()

        def read() -> None:
            nonlocal shown
            try:
                while True:
                    message = json.loads(ws.recv(timeout=timeout_s))
                    for seg in message.get("segments", []):
                        segments[str(seg["start"])] = seg["text"].strip()
                    text = " ".join(segments[k] for k in sorted(segments, key=float))
                    if message.get("segments") and text != shown:
                        shown = text
                        stream.updates.append(time.monotonic())
            except (ConnectionClosed, TimeoutError):
                pass
            finally:
                done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        _pace(ws, samples, lambda s: (s.astype(np.float32) / 32768.0).tobytes(), stream)
        # WhisperLive drops what it has not decoded when END_OF_AUDIO comes: silence goes on
        # at real-time pace until the text has not changed for 2 s (at most 10 s), as a
        # speaker's microphone would stay open, then the end.
        ended = time.monotonic()
        silence = np.zeros(int(RATE * PIECE_S), dtype=np.float32).tobytes()
        while time.monotonic() - ended < 10:
            last = stream.updates[-1] if stream.updates else ended
            if time.monotonic() - max(last, ended) > 2.0:
                break
            ws.send(silence)
            time.sleep(PIECE_S)
        ws.send(b"END_OF_AUDIO")
        if not done.wait(timeout_s):
            stream.error = "no close after END_OF_AUDIO"
    stream.final_text = shown
    return stream


def whisperlivekit(url: str, samples: np.ndarray, timeout_s: float = 300) -> Stream:
    """One WhisperLiveKit session (``url`` ws://host:port/asr, server run with --pcm-input)."""
    stream = Stream()
    shown = ""
    with connect(url + "?language=en", open_timeout=30, max_size=2**22) as ws:
        config = json.loads(ws.recv(timeout=timeout_s))
        if config.get("type") != "config":
            stream.error = f"unexpected first message: {config}"
            return stream
        done = threading.Event()

        def read() -> None:
            nonlocal shown
            try:
                while True:
                    message = json.loads(ws.recv(timeout=timeout_s))
                    if message.get("type") == "ready_to_stop":
                        break
                    if "lines" not in message:
                        continue
                    committed = " ".join(
                        line["text"].strip() for line in message["lines"] if line.get("text")
                    )
                    text = f"{committed} {message.get('buffer_transcription', '')}".strip()
                    if text and text != shown:
                        shown = text
                        stream.updates.append(time.monotonic())
                    stream.final_text = committed or text
            except (ConnectionClosed, TimeoutError):
                pass
            finally:
                done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        _pace(ws, samples, lambda s: s.astype("<i2").tobytes(), stream)
        ws.send(np.zeros(RATE, dtype="<i2").tobytes())
        ws.send(b"")
        if not done.wait(timeout_s):
            stream.error = "no ready_to_stop after the end of the audio"
    if not stream.final_text:
        stream.final_text = shown
    return stream
