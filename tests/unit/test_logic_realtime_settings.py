"""Session updates, field by field: what applies, what is refused, and that one bad field
never discards the rest (issue #10: a single unsupported value used to drop the update)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asrpool_router.logic.chunking import ChunkingPolicy
from asrpool_router.logic.pcm import AudioFormat
from asrpool_router.logic.realtime_settings import (
    Applied,
    Dialect,
    NoiseReduction,
    SessionConfig,
    TurnKind,
    apply_update,
)

START = SessionConfig()


def known(model: str) -> str | None:
    return None if model in ("whisper-1", "tiny.en") else f"Model '{model}' is not served here."


def ga(
    audio_in: dict[str, Any] | None = None, config: SessionConfig = START, **top: Any
) -> Applied:
    session: dict[str, Any] = {"type": "transcription", **top}
    if audio_in is not None:
        session["audio"] = {"input": audio_in}
    return apply_update(config, session, Dialect.GA, known)


def beta(session: dict[str, Any], config: SessionConfig = START) -> Applied:
    return apply_update(config, session, Dialect.BETA, known)


def params(applied: Applied) -> list[str | None]:
    return [e.param for e in applied.errors]


def test_a_full_ga_update_applies_every_field():
    applied = ga(
        {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "near_field"},
            "transcription": {
                "model": "tiny.en",
                "language": "EN",
                "prompt": "Kenobi",
                "keywords": ["Tatooine", " "],
            },
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.7,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 800,
                "idle_timeout_ms": 5000,
                "create_response": False,
                "max_chunk_ms": 20000,
            },
        },
        include=["item.input_audio_transcription.logprobs"],
    )
    assert applied.errors == []
    c = applied.config
    assert (c.model, c.language, c.prompt, c.keywords) == ("tiny.en", "en", "Kenobi", ("Tatooine",))
    assert c.whisper_prompt() == "Kenobi Tatooine"
    assert c.include_logprobs and c.noise_reduction == NoiseReduction("near_field", 1.0)
    p = c.chunking
    assert (p.vad.threshold, p.prefix_padding_ms, p.silence_duration_ms) == (0.7, 200, 800)
    assert (p.idle_timeout_ms, p.max_utterance_ms, c.chunking_chosen) == (5000, 20000, True)
    assert c.response_flags == (("create_response", False),)
    assert c.effective_chunking().vad.low_cut_hz == 100.0


def test_one_bad_field_is_named_and_every_other_field_still_applies():
    applied = ga(
        {
            "format": {"type": "audio/pcm", "rate": 16000},
            "transcription": {"model": "large-v9", "language": "de", "prompt": "Hallo"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 1, "threshold": 0.8},
        }
    )
    assert params(applied) == [
        "session.audio.input.format.rate",
        "session.audio.input.transcription.model",
        "session.audio.input.turn_detection.silence_duration_ms",
    ]
    assert [e.code for e in applied.errors] == [
        "invalid_sample_rate",
        "model_not_found",
        "invalid_turn_detection",
    ]
    c = applied.config
    assert (c.sample_rate, c.model) == (24000, None)  # the refused fields keep their values
    assert (c.language, c.prompt, c.chunking.vad.threshold) == ("de", "Hallo", 0.8)
    assert c.chunking.silence_duration_ms == START.chunking.silence_duration_ms
    assert "large-v9" in applied.errors[1].message


@pytest.mark.parametrize(
    ("eagerness", "silence_ms"), [("low", 2000), ("medium", 1000), ("auto", 1000), ("high", 500)]
)
def test_semantic_vad_maps_eagerness_to_the_pause_that_ends_an_utterance(eagerness, silence_ms):
    applied = ga({"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}})
    assert applied.errors == []
    c = applied.config
    assert c.turn_kind is TurnKind.SEMANTIC_VAD and c.eagerness == eagerness
    assert c.chunking.server_vad and c.chunking.silence_duration_ms == silence_ms


def test_semantic_vad_refuses_server_vad_knobs_and_back_to_server_vad_resets_the_pause():
    semantic = ga({"turn_detection": {"type": "semantic_vad", "silence_duration_ms": 300}})
    assert params(semantic) == ["session.audio.input.turn_detection.silence_duration_ms"]
    assert semantic.config.chunking.silence_duration_ms == 1000  # auto
    back = ga({"turn_detection": {"type": "server_vad"}}, config=semantic.config)
    assert back.errors == [] and back.config.turn_kind is TurnKind.SERVER_VAD
    assert back.config.chunking.silence_duration_ms == 500


@pytest.mark.parametrize(
    ("fmt", "want"),
    [
        ({"type": "audio/pcmu"}, AudioFormat.PCMU),
        ({"type": "audio/pcma"}, AudioFormat.PCMA),
        ({"type": "audio/pcm"}, AudioFormat.PCM16),
        ({}, AudioFormat.PCM16),
    ],
)
def test_ga_formats_include_g711(fmt, want):
    applied = ga({"format": fmt})
    assert applied.errors == [] and applied.config.audio_format is want
    assert applied.config.input_rate == (24000 if want is AudioFormat.PCM16 else 8000)


@pytest.mark.parametrize(
    ("audio_in", "top", "param", "code"),
    [
        ({"format": {"type": "audio/opus"}}, {}, "format.type", "unsupported_audio_format"),
        ({"format": {"type": "audio/pcmu", "rate": 8000}}, {}, "format.rate", "unknown_parameter"),
        ({"format": "pcm16"}, {}, "format", "invalid_type"),
        ({"noise_reduction": {"type": "studio"}}, {}, "noise_reduction.type", "invalid_value"),
        ({"noise_reduction": {"strength": 2}}, {}, "noise_reduction.strength", "invalid_value"),
        ({"transcription": None}, {}, "transcription", "invalid_type"),
        ({"transcription": {"language": "english"}}, {}, "transcription.language", "invalid_value"),
        ({"transcription": {"delay": "low"}}, {}, "transcription.delay", "unsupported_parameter"),
        (
            {"transcription": {"languages": ["de", "fr"]}},
            {},
            "transcription.languages",
            "unsupported_parameter",
        ),
        ({"transcription": {"speaker": 1}}, {}, "transcription.speaker", "unknown_parameter"),
        ({"turn_detection": {"type": "push"}}, {}, "turn_detection.type", "invalid_turn_detection"),
        (
            {"turn_detection": {"eagerness": "high"}},  # server_vad by default
            {},
            "turn_detection.eagerness",
            "unknown_parameter",
        ),
        (
            {"turn_detection": {"idle_timeout_ms": 10}},
            {},
            "turn_detection.idle_timeout_ms",
            "invalid_turn_detection",
        ),
        (
            {"turn_detection": {"threshold": True}},
            {},
            "turn_detection.threshold",
            "invalid_turn_detection",
        ),
        (
            {"turn_detection": {"max_chunk_ms": 60000}},
            {},
            "turn_detection.max_chunk_ms",
            "invalid_turn_detection",
        ),
        ({"echo": True}, {}, "echo", "unknown_parameter"),
    ],
)
def test_each_refused_ga_field_is_named(audio_in, top, param, code):
    applied = ga(audio_in, **top)
    assert [(e.param, e.code) for e in applied.errors] == [(f"session.audio.input.{param}", code)]


@pytest.mark.parametrize(
    ("top", "param", "code"),
    [
        ({"type": "realtime"}, "session.type", "invalid_value"),
        ({"include": ["item.input_audio_transcription.words"]}, "session.include", "invalid_value"),
        (
            {"input_audio_sample_rate": 16000},
            "session.input_audio_sample_rate",
            "unknown_parameter",
        ),
        ({"audio": {"output": {}}}, "session.audio.output", "unknown_parameter"),
        ({"audio": []}, "session.audio", "invalid_type"),
    ],
)
def test_each_refused_ga_session_field_is_named(top, param, code):
    applied = apply_update(START, top, Dialect.GA, known)
    assert [(e.param, e.code) for e in applied.errors] == [(param, code)]


def test_a_beta_name_in_a_ga_update_says_where_it_belongs():
    applied = apply_update(START, {"input_audio_format": "pcm16"}, Dialect.GA, known)
    assert "transcription_session.update" in applied.errors[0].message


def test_a_full_beta_update_applies_every_field():
    applied = beta(
        {
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": "x"},
            "input_audio_noise_reduction": {"type": "far_field"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            "include": ["item.input_audio_transcription.logprobs"],
            "modalities": ["text"],
        }
    )
    assert applied.errors == []
    c = applied.config
    assert c.audio_format is AudioFormat.PCMU and c.input_rate == 8000
    assert c.noise_reduction == NoiseReduction("far_field") and c.include_logprobs
    assert c.chunking.silence_duration_ms == 500 and c.model == "whisper-1"


@pytest.mark.parametrize(
    ("session", "param", "code"),
    [
        ({"input_audio_format": "opus"}, "session.input_audio_format", "unsupported_audio_format"),
        (
            {"input_audio_sample_rate": 8000},
            "session.input_audio_sample_rate",
            "invalid_sample_rate",
        ),
        (
            {"input_audio_format": "g711_alaw", "input_audio_sample_rate": 16000},
            "session.input_audio_sample_rate",
            "invalid_sample_rate",
        ),
        (
            {"turn_detection": {"idle_timeout_ms": 5000}},  # beta has no timeout_triggered
            "session.turn_detection.idle_timeout_ms",
            "unknown_parameter",
        ),
        ({"modalities": ["text", "audio"]}, "session.modalities", "unsupported_parameter"),
        ({"client_secret": {}}, "session.client_secret", "unsupported_parameter"),
        (
            {"input_audio_noise_reduction": {"type": "near_field", "strength": 1}},
            "session.input_audio_noise_reduction.strength",
            "unknown_parameter",
        ),
        (
            {"input_audio_transcription": {"keywords": ["a"]}},
            "session.input_audio_transcription.keywords",
            "unknown_parameter",
        ),
        ({"audio": {}}, "session.audio", "unknown_parameter"),
    ],
)
def test_each_refused_beta_field_is_named(session, param, code):
    applied = beta(session)
    assert [(e.param, e.code) for e in applied.errors] == [(param, code)]


def test_beta_pcm16_at_16_khz_and_g711_at_8_khz():
    pcm = beta({"input_audio_format": "pcm16", "input_audio_sample_rate": 16000})
    assert pcm.errors == [] and pcm.config.input_rate == 16000
    g711 = beta({"input_audio_format": "g711_alaw", "input_audio_sample_rate": 8000})
    assert g711.errors == [] and g711.config.input_rate == 8000


def test_fields_an_update_leaves_out_keep_their_values():
    first = ga({"transcription": {"language": "fr", "prompt": "Bonjour"}})
    second = ga({"transcription": {"model": "whisper-1"}}, config=first.config)
    assert (second.config.language, second.config.prompt) == ("fr", "Bonjour")
    cleared = ga({"transcription": {"language": None}}, config=second.config)
    assert cleared.config.language is None


def test_null_turn_detection_commits_by_hand_and_null_noise_reduction_turns_it_off():
    on = ga({"noise_reduction": {"type": "far_field", "strength": 0.5}})
    assert on.config.effective_chunking().vad.low_cut_hz == 100.0
    off = ga({"noise_reduction": None, "turn_detection": None}, config=on.config)
    assert off.errors == [] and off.config.noise_reduction is None
    assert not off.config.chunking.server_vad
    assert off.config.effective_chunking().vad.low_cut_hz == 0.0


def test_json_numbers_spelled_as_floats_are_whole_milliseconds():
    applied = ga({"turn_detection": {"silence_duration_ms": 700.0}})
    assert applied.errors == [] and applied.config.chunking.silence_duration_ms == 700
    bad = ga({"turn_detection": {"silence_duration_ms": 700.5}})
    assert params(bad) == ["session.audio.input.turn_detection.silence_duration_ms"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "type", "audio", "input", "format", "rate", "transcription", "turn_detection",
        "noise_reduction", "model", "language", "threshold", "silence_duration_ms",
        "idle_timeout_ms", "eagerness", "include", "input_audio_format", "strength",
        "input_audio_sample_rate", "input_audio_transcription", "max_chunk_ms",
    ]
)  # fmt: skip
sessions = st.recursive(
    st.dictionaries(field_names, json_values, max_size=4),
    lambda children: st.dictionaries(field_names, children | json_values, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(session=sessions, dialect=st.sampled_from(list(Dialect)))
def test_no_update_raises_and_every_result_is_a_valid_config(session, dialect):
    applied = apply_update(START, session, dialect, known)
    assert all(e.param and e.param.startswith("session") for e in applied.errors)
    policy = applied.config.effective_chunking()
    assert isinstance(policy, ChunkingPolicy)  # built, so its own checks passed
    assert applied.config.input_rate in (8000, 16000, 24000)
