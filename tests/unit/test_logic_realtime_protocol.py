"""The realtime protocol: client events parsed, bad ones named, server events shaped."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from asrpool_router.logic import realtime_protocol as proto
from asrpool_router.logic.pcm import to_whisper_rate, wav_bytes

CONFIG = proto.SessionConfig()


def parse(event: object) -> proto.Command:
    return proto.parse_event(json.dumps(event), CONFIG)[1]


def pcm_b64(samples: list[int]) -> str:
    return base64.b64encode(np.array(samples, dtype="<i2").tobytes()).decode()


def test_append_decodes_pcm16():
    command = parse({"type": "input_audio_buffer.append", "audio": pcm_b64([1, -2, 32767])})
    assert isinstance(command, proto.AppendAudio)
    assert command.samples.tolist() == [1, -2, 32767]


def test_commit_clear_and_event_ids():
    event_id, command = proto.parse_event(
        '{"type":"input_audio_buffer.commit","event_id":"e1"}', CONFIG
    )
    assert event_id == "e1" and isinstance(command, proto.CommitAudio)
    assert isinstance(parse({"type": "input_audio_buffer.clear"}), proto.ClearAudio)


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
    assert isinstance(command, proto.UpdateSession)
    c = command.config
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
    assert isinstance(command, proto.UpdateSession)
    assert command.config.sample_rate == 24000 and not command.config.chunking.server_vad
    public = command.config.public()
    assert public["turn_detection"] is None and public["input_audio_sample_rate"] == 24000


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_event"),
        ('{"type": "response.create"}', "unknown_event"),
        ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "invalid_audio"),
        ('{"type": "input_audio_buffer.append", "audio": "AA=="}', "invalid_audio"),  # one byte
        ('{"type": "input_audio_buffer.append"}', "invalid_audio"),
        (
            '{"type": "session.update", "session": {"input_audio_sample_rate": 44100}}',
            "invalid_sample_rate",
        ),
        (
            '{"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}}',
            "unsupported_audio_format",
        ),
        (
            '{"type": "session.update", "session": {"turn_detection": {"type": "semantic_vad"}}}',
            "invalid_turn_detection",
        ),
        (
            '{"type": "session.update", "session": {"turn_detection": {"silence_duration_ms": 1}}}',
            "invalid_turn_detection",
        ),
        ('{"type": "session.update", "session": "all"}', "invalid_event"),
    ],
)
def test_bad_events_are_named_not_fatal(raw: str, code: str):
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_event(raw, CONFIG)
    assert err.value.code == code and err.value.message


def test_oversized_append_is_refused_before_decoding():
    huge = base64.b64encode(b"\0" * (proto.MAX_APPEND_BYTES + 4)).decode()
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_event(json.dumps({"type": "input_audio_buffer.append", "audio": huge}), CONFIG)
    assert err.value.code == "append_too_large"


def test_error_event_carries_the_client_event_id():
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_event('{"type": "nope", "event_id": "evt_7"}', CONFIG)
    event = proto.error_event(err.value.code, err.value.message, event_id=err.value.event_id)
    assert event["type"] == "error" and event["error"]["event_id"] == "evt_7"


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
