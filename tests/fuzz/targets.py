"""Fuzz targets: the parsers that take bytes from strangers, each with its contract.

Each target takes one input (bytes) and returns quietly, or raises ``Bug`` (or lets an
unexpected exception out) when the parser broke its contract: it must answer with its
result or with its own refusal (a ``ProtocolError``, a 4xx ``AsrpoolError``, ``BadAudio``),
never crash, hang or hand on a value that breaks its callers. Run by hypothesis in
``tests/fuzz/test_parsers.py`` (bounded, in ``make test``) and by atheris in
``tests/fuzz/run_atheris.py`` (``make fuzz``, longer; a short run in ``make test`` too).
Every input that once broke a target lives in ``tests/fuzz/corpus/<target>/`` and is
replayed on every run.

G.711 (mu-law/A-law) decoding is fuzzed with base64 PCM16 (``pcm_base64``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import wave
from collections.abc import Callable

import anyio
import numpy as np
from starlette.requests import Request

from asrpool_contract.audio_form import read_form
from asrpool_contract.http_errors import allow_value, retry_after_value
from asrpool_contract.transcript_stream import EventReader
from asrpool_contract.uploads import read_audio_form
from asrpool_contract.wire import ERRORS, AsrpoolError, wants_chinese
from asrpool_router.auth import bearer_token
from asrpool_router.logic.audio_estimate import estimate_audio_seconds
from asrpool_router.logic.chunking import Chunker
from asrpool_router.logic.errors import AttemptResult, classify
from asrpool_router.logic.pcm import (
    ACCEPTED_RATES,
    AudioFormat,
    BadAudio,
    decode_base64_audio,
    to_whisper_rate,
)
from asrpool_router.logic.pod_load import PodLoad
from asrpool_router.logic.realtime_protocol import (
    AppendAudio,
    ProtocolError,
    UpdateSession,
    beta_session,
    ga_session,
    parse_event,
)
from asrpool_router.logic.realtime_settings import SessionConfig

# The multipart parser logs each malformed body it meets: thousands of lines, all expected.
logging.getLogger("python_multipart").setLevel(logging.ERROR)


class Bug(AssertionError):
    """A parser broke its contract on this input."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Bug(what)


# --- realtime protocol ----------------------------------------------------------------


def realtime_event(data: bytes) -> None:
    """A client's WebSocket message → a command whose values the session can use, or a
    ProtocolError the session answers with an ``error`` event."""
    try:
        _event_id, command = parse_event(data, SessionConfig(), lambda model: None)
    except ProtocolError as err:
        check(isinstance(err.code, str) and isinstance(err.message, str), "error event text")
        json.dumps(err.message)
        return
    if isinstance(command, AppendAudio):
        check(command.samples.dtype == np.int16, "append samples are int16")
    if isinstance(command, UpdateSession):
        for err in command.applied.errors:  # one per refused field, each a readable event
            check(isinstance(err.code, str) and isinstance(err.message, str), "error text")
        config = command.applied.config
        for name in ("model", "language", "prompt"):
            value = getattr(config, name)
            check(value is None or isinstance(value, str), f"{name} is a string or None")
        check(config.input_rate in (*ACCEPTED_RATES, 8_000), "an accepted rate")
        c = config.chunking
        for name in ("silence_duration_ms", "prefix_padding_ms", "max_utterance_ms"):
            check(type(getattr(c, name)) is int, f"{name} is an int")
        check(math.isfinite(c.vad.threshold), "threshold is finite")
        check(c.prefix_padding_ms >= 0, "no negative padding")
        # A cut at least every Whisper window: else a talking client's audio piles up.
        check(c.max_utterance_ms <= 30_000, "utterances are cut")
        # session.updated echoes the config: it must be JSON a client can read.
        json.dumps(ga_session(config, "sess"), allow_nan=False)
        json.dumps(beta_session(config, "sess"), allow_nan=False)
        # The chunker must take it, and a second of speech-like noise with it.
        noise = (np.sin(np.arange(16_000) / 5.0) * 8000).astype(np.int16)
        Chunker(c).feed(noise)


# --- audio: base64 PCM16, the WAV header ------------------------------------------------


def pcm_base64(data: bytes) -> None:
    """input_audio_buffer.append's audio → int16 samples (then 16 kHz), or BadAudio."""
    text = data.decode("latin-1")
    for payload in (text, base64.b64encode(data).decode()):
        for fmt in AudioFormat:
            try:
                samples = decode_base64_audio(payload, fmt)
            except BadAudio:
                continue
            check(samples.dtype == np.int16, "int16 samples")
            check(fmt is AudioFormat.PCM16 or samples.size == len(base64.b64decode(payload)),
                  "one sample a G.711 byte")  # fmt: skip
        try:
            samples = decode_base64_audio(payload)
        except BadAudio:
            continue
        for rate in ACCEPTED_RATES:
            out = to_whisper_rate(samples, rate)
            check(out.dtype == np.int16, "resampled to int16")
            check(abs(out.size - samples.size * 16_000 / rate) <= 1, "duration kept")


def wav_estimate(data: bytes) -> None:
    """An upload's first bytes and size → seconds of audio: finite, >= 0, never more than
    the bytes could hold at the lowest byte rate a WAV header may claim."""
    size = int.from_bytes(data[:4].ljust(4, b"\0"), "little")
    head = data[4:]
    for n in (size, len(head)):
        seconds = estimate_audio_seconds(head[:4096], n)
        check(math.isfinite(seconds) and seconds >= 0, f"finite, not negative: {seconds}")
        check(seconds <= max(n, 0), f"at most one second a byte: {seconds} for {n}")


def wav_file(data: bytes) -> None:
    """A real WAV header of fuzzed parameters: the estimate is the header's own length."""
    if len(data) < 6:
        return
    rate = 1 + int.from_bytes(data[:3], "little") % 200_000
    width = 1 + data[3] % 4
    channels = 1 + data[4] % 8
    frames = data[5:]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames[: len(frames) - len(frames) % (width * channels)])
    wav = buf.getvalue()
    expected = (len(wav) - 44) / (rate * width * channels)
    seconds = estimate_audio_seconds(wav[:4096], len(wav))
    check(math.isclose(seconds, expected, abs_tol=1e-9), f"{seconds} != {expected}")


# --- the upload reader ------------------------------------------------------------------

BOUNDARY = "fuzzboundary"
MAX_UPLOAD = 4096


def upload_form(data: bytes) -> None:
    """A multipart body (any bytes, any split) → the form and its file, or a 4xx refusal."""
    split = data[0] if data else 0
    body = data[1:]

    async def read() -> None:
        chunks = [body[i : i + split + 1] for i in range(0, len(body), split + 1)] or [b""]
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive() -> dict[str, object]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
        if split % 3 == 0:  # sometimes declared, sometimes chunked
            headers.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
        try:
            form, upload = await read_audio_form(Request(scope, receive), MAX_UPLOAD)
        except AsrpoolError as err:
            check(400 <= err.status < 500, f"a refusal is a 4xx, not {err.status}")
            return
        try:
            check(upload.size is None or upload.size <= MAX_UPLOAD, "the limit holds")
            fields = {k: [str(v) for v in form.getlist(k)] for k in form if k != "file"}
            form_fields(fields)
        finally:
            await form.close()

    anyio.run(read)


def form_fields(fields: dict[str, list[str]]) -> None:
    try:
        read_form(fields)
    except AsrpoolError as err:
        check(err.status == 400 and err.param is not None, "a 400 naming the field")


def audio_form(data: bytes) -> None:
    """Form fields (name → values) → the validated form, or a 400 naming the field."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raw = {"chunking_strategy": [data.decode("utf-8", "replace")]}
    if not isinstance(raw, dict):
        return
    fields = {
        str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in raw.items()
    }
    form_fields(fields)


# --- headers ----------------------------------------------------------------------------


def headers(data: bytes) -> None:
    """Header values from strangers (clients and pods) → their meaning, never a crash."""
    text = data.decode("latin-1")
    first, _, second = text.partition("\n")
    wants_chinese(text)
    token = bearer_token(text)
    check(token is None or (token != "" and token == token.strip()), "a token or None")
    load = PodLoad.parse(first, second)
    check(load is None or (load.slots >= 1 and load.in_flight >= 0), "a sane pod load")
    allow = allow_value(text)
    check(allow_value(allow) == allow, "Allow is normal")
    try:
        seconds = float(first)
    except ValueError:
        seconds = None
    value = retry_after_value(seconds)
    check(value.isdigit() and int(value) >= 1, f"Retry-After {value!r}")
    # A pod's answer: the code header, the status and the body are all the pod's say.
    status = int.from_bytes(data[:2].ljust(2, b"\0"), "big") % 1000
    outcome = classify(
        AttemptResult(status=status, error_code_header=first, body_text=second, body=data),
        "json",
    )
    check(outcome.code is None or outcome.code in ERRORS, "a known final code")


def sse_stream(data: bytes) -> None:
    """A pod's text/event-stream, split anywhere → the same events, never an exception."""
    whole = EventReader().feed(data)
    cut = data[0] % (len(data) + 1) if data else 0
    reader = EventReader()
    parts = reader.feed(data[:cut]) + reader.feed(data[cut:])
    check(parts == whole, "events do not depend on how the bytes were split")
    check(all(isinstance(e, dict) for e in whole), "events are objects")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "realtime_event": realtime_event,
    "pcm_base64": pcm_base64,
    "wav_estimate": wav_estimate,
    "wav_file": wav_file,
    "upload_form": upload_form,
    "audio_form": audio_form,
    "headers": headers,
    "sse_stream": sse_stream,
}
