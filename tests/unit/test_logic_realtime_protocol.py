"""The realtime protocol: client events parsed, bad ones named, server events in SDK shapes."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from asrpool_router.logic import realtime_protocol as proto
from asrpool_router.logic.chunking import ChunkingPolicy
from asrpool_router.logic.pcm import AudioFormat, to_whisper_rate, wav_bytes
from asrpool_router.logic.realtime_settings import Dialect, NoiseReduction, TurnKind
from asrpool_router.logic.session_slots import SessionCap
from tests.support import openai_shapes

CONFIG = proto.SessionConfig()


def known(model: str) -> str | None:
    return None if model in ("whisper-1", "tiny.en") else f"Model '{model}' is not served here."


def parse(event: object, config: proto.SessionConfig = CONFIG) -> proto.Command:
    return proto.parse_event(json.dumps(event), config, known)[1]


def pcm_b64(samples: list[int]) -> str:
    return base64.b64encode(np.array(samples, dtype="<i2").tobytes()).decode()


def test_append_decodes_pcm16():
    command = parse({"type": "input_audio_buffer.append", "audio": pcm_b64([1, -2, 32767])})
    assert isinstance(command, proto.AppendAudio)
    assert command.samples.tolist() == [1, -2, 32767]


def test_append_decodes_g711_in_a_g711_session():
    pcmu = proto.SessionConfig(audio_format=AudioFormat.PCMU)
    pcma = proto.SessionConfig(audio_format=AudioFormat.PCMA)
    # 0xFF is μ-law's zero, 0xD5 A-law's smallest positive step; one byte a sample.
    for config, raw, want in ((pcmu, b"\xff\x80", [0, 32124]), (pcma, b"\xd5\x55", [8, -8])):
        audio = base64.b64encode(raw).decode()
        command = parse({"type": "input_audio_buffer.append", "audio": audio}, config)
        assert isinstance(command, proto.AppendAudio)
        assert command.samples.tolist() == want
        assert config.input_rate == 8000


def test_commit_clear_and_event_ids():
    event_id, command = proto.parse_event(
        '{"type":"input_audio_buffer.commit","event_id":"e1"}', CONFIG, known
    )
    assert event_id == "e1" and isinstance(command, proto.CommitAudio)
    assert isinstance(parse({"type": "input_audio_buffer.clear"}), proto.ClearAudio)


@pytest.mark.parametrize(
    ("header", "subprotocols", "dialect"),
    [
        (None, [], Dialect.GA),  # the GA SDK, and any client that says nothing
        ("realtime=v1", [], Dialect.BETA),  # client.beta.realtime.connect
        ("assistants=v2, realtime=v1", [], Dialect.BETA),
        (None, ["realtime", "openai-insecure-api-key.k", "openai-beta.realtime-v1"], Dialect.BETA),
        (None, ["realtime", "openai-insecure-api-key.k"], Dialect.GA),  # a GA browser
        ("assistants=v2", [], Dialect.GA),
    ],
)
def test_the_dialect_at_connect_follows_the_beta_header_or_subprotocol(
    header, subprotocols, dialect
):
    assert proto.dialect_at_connect(header, subprotocols) is dialect


@pytest.mark.parametrize(
    ("kind", "dialect"),
    [("session.update", Dialect.GA), ("transcription_session.update", Dialect.BETA)],
)
def test_each_update_event_names_its_dialect(kind, dialect):
    command = parse({"type": kind, "session": {}})
    assert isinstance(command, proto.UpdateSession) and command.dialect is dialect
    assert command.applied.errors == []


def test_beta_session_update_sets_model_language_rate_and_vad():
    command = parse(
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "pcm16",
                "input_audio_sample_rate": 16000,
                "input_audio_transcription": {
                    "model": "tiny.en",
                    "language": "en",
                    "prompt": "Kenobi",
                },
                "turn_detection": {
                    "type": "server_vad",
                    "silence_duration_ms": 800,
                    "threshold": 0.7,
                },
            },
        }
    )
    assert isinstance(command, proto.UpdateSession) and not command.applied.errors
    c = command.applied.config
    assert (c.model, c.language, c.prompt, c.sample_rate) == ("tiny.en", "en", "Kenobi", 16000)
    assert c.chunking.server_vad and c.chunking.silence_duration_ms == 800
    assert c.chunking.vad.threshold == 0.7


def test_ga_session_update_reads_audio_input_and_null_turn_detection():
    command = parse(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "whisper-1"},
                        "turn_detection": None,
                    }
                },
            },
        }
    )
    assert isinstance(command, proto.UpdateSession) and not command.applied.errors
    config = command.applied.config
    assert config.sample_rate == 24000 and not config.chunking.server_vad
    shown = proto.ga_session(config, "sess_1")["audio"]["input"]
    assert shown["turn_detection"] is None and shown["format"] == {
        "type": "audio/pcm",
        "rate": 24000,
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_event"),
        ('{"type": "response.create"}', "unknown_event"),
        ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "invalid_audio"),
        ('{"type": "input_audio_buffer.append", "audio": "AA=="}', "invalid_audio"),  # one byte
        ('{"type": "input_audio_buffer.append"}', "invalid_audio"),
        ('{"type": "session.update", "session": "all"}', "invalid_event"),
        ('{"type": "transcription_session.update"}', "invalid_event"),
    ],
)
def test_bad_events_are_named_not_fatal(raw: str, code: str):
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_event(raw, CONFIG, known)
    assert err.value.code == code and err.value.message


def test_oversized_append_is_refused_before_decoding():
    huge = base64.b64encode(b"\0" * (proto.MAX_APPEND_BYTES + 4)).decode()
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_event(
            json.dumps({"type": "input_audio_buffer.append", "audio": huge}), CONFIG, known
        )
    assert err.value.code == "append_too_large"


def test_error_event_carries_the_client_event_id():
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_event('{"type": "nope", "event_id": "evt_7"}', CONFIG, known)
    event = proto.as_event(err.value)
    assert event["type"] == "error" and event["error"]["event_id"] == "evt_7"


# --- what the pool answers ------------------------------------------------------------

LOGPROBS = [
    {"token": " The", "logprob": -0.01, "bytes": [32, 84, 104, 101]},
    {"token": " fox", "logprob": -0.5, "bytes": [32, 102, 111, 120]},
]


def test_a_final_passes_the_workers_logprobs_through_to_completed():
    final = proto.final_answer(json.dumps({"text": " The fox ", "logprobs": LOGPROBS}))
    assert final.text == "The fox" and final.logprobs == LOGPROBS
    event = proto.completed("item_1", final.text, 1.23456, final.logprobs, with_logprobs=True)
    assert event["logprobs"] == LOGPROBS
    assert event["usage"] == {"type": "duration", "seconds": 1.235}
    openai_shapes.ga({**event, "event_id": "e"})
    openai_shapes.beta({**event, "event_id": "e"})


def test_logprobs_only_when_asked_and_null_when_the_pod_gives_none():
    final = proto.final_answer('{"text": "hi"}')
    assert final.logprobs is None
    assert "logprobs" not in proto.completed("item_1", "hi", 1.0, None)
    asked = proto.completed("item_1", "hi", 1.0, None, with_logprobs=True)
    assert asked["logprobs"] is None


@pytest.mark.parametrize(
    "raw",
    [
        [{"token": "a"}],  # no logprob
        [{"token": 3, "logprob": -1.0}],
        [{"token": "a", "logprob": -1.0, "bytes": "a"}],
        {"token": "a", "logprob": -1.0},
    ],
)
def test_logprobs_not_in_openais_shape_are_dropped_not_fatal(raw):
    final = proto.final_answer(json.dumps({"text": "hi", "logprobs": raw}))
    assert final.text == "hi" and final.logprobs is None


def test_logprobs_without_bytes_get_the_tokens_utf8():
    final = proto.final_answer(
        json.dumps({"text": "é", "logprobs": [{"token": "é", "logprob": 0}]})
    )
    assert final.logprobs == [{"token": "é", "logprob": 0.0, "bytes": [195, 169]}]


@pytest.mark.parametrize("body", ["", "[]", '{"txt": 1}', "<html>"])
def test_an_answer_that_is_no_transcription_is_an_error(body):
    with pytest.raises(ValueError):
        proto.final_answer(body)


# --- every server event, in OpenAI's shapes -------------------------------------------

CONFIGS = {
    "defaults": CONFIG,
    "semantic, G.711, noise reduction, logprobs, keywords": proto.SessionConfig(
        audio_format=AudioFormat.PCMA,
        turn_kind=TurnKind.SEMANTIC_VAD,
        eagerness="low",
        noise_reduction=NoiseReduction("far_field", 0.5),
        include_logprobs=True,
        keywords=("Kenobi",),
        language="en",
        response_flags=(("create_response", False),),
    ),
    "manual commits": proto.SessionConfig(chunking=ChunkingPolicy(server_vad=False)),
    "idle timeout": proto.SessionConfig(chunking=ChunkingPolicy(idle_timeout_ms=5000)),
}
SHARED_EVENTS = [
    proto.speech_started("item_1", 300),
    proto.speech_stopped("item_1", 2000),
    proto.committed("item_1", None),
    proto.committed("item_2", "item_1"),
    proto.cleared(),
    proto.delta("item_1", " fox", "The fox", 1800),
    proto.completed("item_1", "The fox.", 2.0),
    proto.completed("item_1", "The fox.", 2.0, LOGPROBS, with_logprobs=True),
    proto.completed("item_1", "The fox.", 2.0, None, with_logprobs=True),
    proto.failed("item_1", "gpu_oom", "No pod had room."),
    proto.error_event("invalid_audio", "bad", param="audio", event_id="e1"),
    proto.session_limit_error(SessionCap.PER_KEY, 16),
    proto.idle_timeout_error(120),
]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("kind", ["created", "updated"])
def test_session_events_are_the_sdks_types_in_each_dialect(name, kind):
    config = CONFIGS[name]
    ga = proto.session_event(kind, config, "sess_1", Dialect.GA)
    assert ga["type"] == f"session.{kind}"
    session = openai_shapes.ga({**ga, "event_id": "e"}).session  # type: ignore[attr-defined]
    assert type(session).__name__ == "RealtimeTranscriptionSessionCreateRequest"
    beta = proto.session_event(kind, config, "sess_1", Dialect.BETA)
    assert beta["type"] == f"transcription_session.{kind}"
    openai_shapes.beta({**beta, "event_id": "e"})


@pytest.mark.parametrize("event", SHARED_EVENTS, ids=lambda e: e["type"])
def test_every_other_server_event_is_the_sdks_type_in_both_dialects(event):
    openai_shapes.ga({**event, "event_id": "e"})
    openai_shapes.beta({**event, "event_id": "e"})


def test_timeout_triggered_is_the_ga_sdks_type():
    openai_shapes.ga({**proto.timeout_triggered("item_3", 2000, 7000), "event_id": "e"})


def test_a_field_the_sdk_does_not_know_fails_the_shape_check():
    event = {**proto.speech_started("item_1", 300), "event_id": "e", "audio_start": 1}
    with pytest.raises(AssertionError, match="audio_start"):
        openai_shapes.ga(event)


@pytest.mark.parametrize(
    ("shown", "hypothesis", "append", "now_shown"),
    [
        ("", "Hello", "Hello", "Hello"),
        ("Hello", "Hello there", " there", "Hello there"),
        ("Hello there", "Hallo there", "", "Hello there"),  # a revision: append-only clients wait
        ("Hello", "Hello", "", "Hello"),
    ],
)
def test_deltas_only_ever_append(shown, hypothesis, append, now_shown):
    assert proto.text_delta(shown, hypothesis) == (append, now_shown)


def test_resampling_24k_to_16k_keeps_duration_and_tone():
    t = np.arange(24_000) / 24_000
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out = to_whisper_rate(tone, 24_000)
    assert out.size == 16_000
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1
    assert to_whisper_rate(tone[:160], 16_000).size == 160


def test_wav_bytes_is_a_readable_wav():
    import io
    import wave

    data = wav_bytes(np.arange(-100, 100, dtype=np.int16))
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16_000, 1, 200)
