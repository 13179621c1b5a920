"""Fuzz the parsers with hypothesis, bounded (``make test``), and replay every finding.

Each target (``targets.py``) gets raw bytes and, where random bytes would rarely get past
the first check, inputs shaped like the real thing: JSON events with the protocol's own
keys and hostile values (NaN, 1e999, wrong types), multipart bodies with real framing,
WAV headers. ``ASRPOOL_FUZZ_EXAMPLES`` sets the examples a test (``make fuzz``: many more).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import BOUNDARY, TARGETS

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = int(os.environ.get("ASRPOOL_FUZZ_EXAMPLES", "300"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def corpus() -> list[tuple[str, Path]]:
    return sorted(
        (target.name, path)
        for target in CORPUS.iterdir()
        if target.is_dir()
        for path in target.iterdir()
        if path.is_file()
    )


@pytest.mark.parametrize(("target", "path"), corpus(), ids=lambda v: getattr(v, "name", v))
def test_every_input_in_the_corpus_passes_its_target(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


def test_every_target_has_a_corpus() -> None:
    assert {t for t, _ in corpus()} == set(TARGETS)


@pytest.mark.parametrize("target", sorted(TARGETS))
@fuzz
@given(data=st.binary(max_size=2048))
def test_random_bytes(target: str, data: bytes) -> None:
    TARGETS[target](data)


# --- shaped inputs ----------------------------------------------------------------------

hostile_numbers = st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), 1e999, -1, 0, 1, 0.5, 2**63, 10**30, -(2**31)]
)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_numbers | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def maybe(keys: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries({}, optional={k: v | values for k, v in keys.items()})


numbers = hostile_numbers | st.integers(-100, 100_000) | st.floats()
turn_detection = st.none() | maybe(
    {
        "type": st.sampled_from(["server_vad", "semantic_vad"]),
        "threshold": numbers,
        "prefix_padding_ms": numbers,
        "silence_duration_ms": numbers,
        "max_chunk_ms": numbers,
    }
)
transcription = maybe(
    {
        "model": st.sampled_from(["whisper-1", "tiny.en"]),
        "language": st.just("en"),
        "prompt": st.text(),
    }
)
audio_format = maybe({"type": st.sampled_from(["audio/pcm", "audio/pcmu"]), "rate": numbers})
session = maybe(
    {
        "input_audio_format": st.sampled_from(["pcm16", "g711_ulaw"]),
        "input_audio_sample_rate": st.sampled_from([16_000, 24_000]) | numbers,
        "input_audio_transcription": transcription,
        "turn_detection": turn_detection,
        "audio": maybe(
            {"input": maybe({"format": audio_format, "transcription": transcription,
                             "turn_detection": turn_detection})}
        ),
    }
)  # fmt: skip
pcm = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "transcription_session.update",
                "session.update",
                "input_audio_buffer.append",
                "input_audio_buffer.commit",
                "input_audio_buffer.clear",
            ]
        )
        | values
    },
    optional={"event_id": values, "session": session | values, "audio": pcm | values},
)


@fuzz
@given(event=events)
def test_realtime_events_shaped_like_the_protocol(event: dict[str, object]) -> None:
    TARGETS["realtime_event"](json.dumps(event).encode())  # NaN and Infinity included


field_names = st.sampled_from(
    [
        "model", "response_format", "stream", "include[]", "include", "chunking_strategy",
        "chunking_strategy[type]", "chunking_strategy[threshold]",
        "chunking_strategy[prefix_padding_ms]", "chunking_strategy[silence_duration_ms]",
        "chunking_strategy[x]", "language", "languages[]", "prompt", "keywords[]",
        "temperature", "timestamp_granularities[]", "known_speaker_names[]", "asrpool_draft",
        "asrpool_offset",
    ]
)  # fmt: skip
field_values = (
    st.sampled_from(["json", "verbose_json", "srt", "true", "false", "server_vad", "auto",
                     "logprobs", "word", "en", "EN", "nan", "inf", "-0", "1e999", "0.5", "300"])
    | st.text(max_size=10)
    | numbers.map(str)
    | values.map(json.dumps)
)  # fmt: skip
forms = st.dictionaries(field_names, st.lists(field_values, min_size=1, max_size=3), max_size=6)


@fuzz
@given(fields=forms)
def test_audio_forms_with_every_field(fields: dict[str, list[str]]) -> None:
    TARGETS["audio_form"](json.dumps(fields).encode())


def part(name: bytes, body: bytes, filename: bytes | None, content_type: bytes | None) -> bytes:
    head = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        head += b'; filename="' + filename + b'"'
    if content_type is not None:
        head += b"\r\nContent-Type: " + content_type
    return head + b"\r\n\r\n" + body


parts = st.builds(
    part,
    st.sampled_from([b"file", b"model", b"stream", b"temperature", b"x"]) | st.binary(max_size=8),
    st.binary(max_size=600) | st.sampled_from([b"RIFF", b"true", b"2", b"json"]),
    st.none() | st.sampled_from([b"a.wav", b""]) | st.binary(max_size=8),
    st.none() | st.sampled_from([b"audio/wav", b"text/plain"]),
)


@fuzz
@given(
    split=st.integers(0, 255),
    bodies=st.lists(parts, max_size=40),
    close=st.booleans(),
    noise=st.binary(max_size=16),
)
def test_multipart_bodies_with_real_framing(
    split: int, bodies: list[bytes], close: bool, noise: bytes
) -> None:
    sep = b"--" + BOUNDARY.encode()
    body = b"".join(sep + b"\r\n" + p + b"\r\n" for p in bodies)
    body += (sep + b"--\r\n" if close else b"") + noise
    TARGETS["upload_form"](bytes([split]) + body)


@fuzz
@given(
    chunk_id=st.sampled_from([b"fmt ", b"data", b"LIST", b"junk"])
    | st.binary(min_size=4, max_size=4),
    sizes=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    rate=st.integers(0, 2**32 - 1),
    declared=st.integers(0, 2**31),
)
def test_wav_headers_that_lie(chunk_id: bytes, sizes: list[int], rate: int, declared: int) -> None:
    head = b"RIFF" + (36).to_bytes(4, "little") + b"WAVE"
    head += b"fmt " + (16).to_bytes(4, "little") + b"\x01\x00\x01\x00" + rate.to_bytes(4, "little")
    head += rate.to_bytes(4, "little") + b"\x02\x00\x10\x00"
    for size in sizes:
        head += chunk_id + size.to_bytes(4, "little")
    head += b"data" + sizes[-1].to_bytes(4, "little")
    TARGETS["wav_estimate"](declared.to_bytes(4, "little")[:4] + head)
