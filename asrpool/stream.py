"""``asrpool stream FILE`` / ``asrpool stream --mic``: live transcription over the realtime socket.

Sends 16 kHz PCM16 in 100 ms pieces at the pace it was recorded (``--fast``:
four times that), prints the growing partial text in place on stderr when it is
a terminal, and each final utterance as a line on stdout. ``--events`` prints
every server event as a JSON line instead. ``--mic`` records with ``arecord``
(ALSA) where a microphone exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from asrpool_contract.wire import WHISPER_SAMPLE_RATE

RATE = WHISPER_SAMPLE_RATE
PIECE_S = 0.1
FAST_SPEED = 4.0
COMMIT_EMPTY = "input_audio_buffer_commit_empty"  # the router accepts bursts up to 8x real time


def read_pcm16(path: Path) -> bytes:
    """The file as 16 kHz mono PCM16 bytes (WAV natively; other formats through PyAV)."""
    with contextlib.suppress(wave.Error, EOFError), wave.open(str(path), "rb") as w:
        if w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2:
            return w.readframes(w.getnframes())
    try:
        from faster_whisper.audio import decode_audio
    except ImportError as exc:  # pragma: no cover - the worker extra brings PyAV
        raise SystemExit(f"cannot decode {path}: install asrpool[worker] for non-WAV") from exc
    samples = decode_audio(str(path), sampling_rate=RATE)
    return (samples.clip(-1, 1) * 32767).astype("<i2").tobytes()


def file_pieces(pcm: bytes, speed: float) -> Iterator[bytes]:
    step = int(RATE * PIECE_S) * 2
    started = time.monotonic()
    for n, offset in enumerate(range(0, len(pcm), step)):
        # Pace against the clock, not by sleeping a fixed time: no drift over long files.
        due = started + n * PIECE_S / speed
        time.sleep(max(0.0, due - time.monotonic()))
        yield pcm[offset : offset + step]
    yield b"\0\0" * int(RATE * 0.8)  # a short pause, so server VAD closes the last utterance


def mic_pieces() -> Iterator[bytes]:
    """Pieces from the default microphone; fails at once (not when first read) without one."""
    arecord = shutil.which("arecord")
    if arecord is None:
        raise SystemExit("asrpool stream --mic needs arecord (Debian package alsa-utils)")
    proc = subprocess.Popen(
        [arecord, "-q", "-f", "S16_LE", "-r", str(RATE), "-c", "1", "-t", "raw"],
        stdout=subprocess.PIPE,
    )
    return _read_pieces(proc)


def _read_pieces(proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    assert proc.stdout is not None
    try:
        while chunk := proc.stdout.read(int(RATE * PIECE_S) * 2):
            yield chunk
    finally:
        proc.terminate()


class Printer:
    def __init__(self, events: bool) -> None:
        self.events = events
        self.in_place = sys.stderr.isatty() and not events

    def __call__(self, event: dict[str, Any]) -> None:
        if self.events:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            return
        kind = event.get("type")
        if kind == "conversation.item.input_audio_transcription.delta" and self.in_place:
            sys.stderr.write("\r\033[K… " + event.get("partial_transcript", "")[-150:])
            sys.stderr.flush()
        elif kind == "conversation.item.input_audio_transcription.completed":
            if self.in_place:
                sys.stderr.write("\r\033[K")
            print(event["transcript"], flush=True)
        elif kind in ("error", "conversation.item.input_audio_transcription.failed"):
            print(f"error: {event['error']['message']}", file=sys.stderr, flush=True)


def stream(args: argparse.Namespace) -> int:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    if not args.mic and not args.file:
        print("asrpool stream: give a FILE or --mic", file=sys.stderr)
        return 2
    pieces = (
        mic_pieces()
        if args.mic
        else file_pieces(read_pcm16(Path(args.file)), FAST_SPEED if args.fast else 1.0)
    )
    url = args.url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    # The beta dialect: only it declares 16 kHz PCM16 (GA's format object says 24 kHz).
    headers = {"OpenAI-Beta": "realtime=v1"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    printer = Printer(args.events)
    pending = {"committed": 0, "done": 0}
    sent_all = threading.Event()
    failed = False

    with connect(url, additional_headers=headers, max_size=2**22) as ws:
        session: dict[str, Any] = {
            "input_audio_sample_rate": RATE,
            "turn_detection": {"type": "server_vad"},
        }
        if args.language:
            session["input_audio_transcription"] = {"language": args.language}
        ws.send(json.dumps({"type": "transcription_session.update", "session": session}))

        def send_audio() -> None:
            try:
                for piece in pieces:
                    ws.send(
                        json.dumps(
                            {
                                "type": "input_audio_buffer.append",
                                "audio": base64.b64encode(piece).decode(),
                            }
                        )
                    )
                ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            except ConnectionClosed:
                pass
            finally:
                sent_all.set()

        sender = threading.Thread(target=send_audio, daemon=True)
        sender.start()
        try:
            while True:
                if sent_all.is_set() and pending["committed"] == pending["done"]:
                    # Everything sent has come back; wait briefly for a late commit echo.
                    try:
                        raw = ws.recv(timeout=1.5)
                    except TimeoutError:
                        break
                else:
                    raw = ws.recv(timeout=120)
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "input_audio_buffer.committed":
                    pending["committed"] += 1
                elif kind in (
                    "conversation.item.input_audio_transcription.completed",
                    "conversation.item.input_audio_transcription.failed",
                ):
                    pending["done"] += 1
                    failed |= kind.endswith("failed")
                elif kind == "error" and event["error"]["code"] == "unauthorized":
                    printer(event)
                    return 1
                elif kind == "error" and event["error"]["code"] == COMMIT_EMPTY:
                    continue  # the pause already closed the last utterance
                printer(event)
        except KeyboardInterrupt:
            pass
        except (TimeoutError, ConnectionClosed) as exc:
            print(f"asrpool stream: connection ended: {exc}", file=sys.stderr)
            return 1
    return 1 if failed else 0
