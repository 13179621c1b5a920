"""Streamed transcription events (asrpool_contract.transcript_stream)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from asrpool_contract import transcript_stream as ts
from asrpool_contract.wire import ErrorCode


def test_events_are_read_back_whatever_way_the_bytes_are_split() -> None:
    events = [ts.delta("Hello", end_s=1.25), ts.delta(" world."), ts.done(
        "Hello world.", audio_seconds=2.0, output_tokens=4, logprobs=None
    )]  # fmt: skip
    wire = b"".join(ts.encode(e) for e in events)
    for step in (1, 3, 7, len(wire)):
        reader = ts.EventReader()
        got = [e for i in range(0, len(wire), step) for e in reader.feed(wire[i : i + step])]
        assert got == [json.loads(json.dumps(e)) for e in events]


@given(st.binary(max_size=300))
def test_garbage_never_breaks_the_reader(noise: bytes) -> None:
    reader = ts.EventReader()
    reader.feed(noise)
    assert reader.feed(b"\n\n" + ts.encode(ts.delta("ok")))[-1] == {"type": ts.DELTA, "delta": "ok"}


def test_the_client_never_sees_asrpools_marks() -> None:
    event = ts.delta(" text", end_s=3.0)
    assert event[ts.END_MARK] == 3.0
    assert ts.for_client(event) == {"type": ts.DELTA, "delta": " text"}


def test_done_counts_audio_tokens_and_error_has_openais_shape() -> None:
    done = ts.done("x", audio_seconds=2.01, output_tokens=3, logprobs=[])
    assert done["usage"]["input_tokens"] == 101 and done["usage"]["total_tokens"] == 104
    assert done["logprobs"] == []
    error = ts.error(ErrorCode.GPU_OOM)
    assert error["type"] == "error" and error["error"]["code"] == "gpu_oom"
