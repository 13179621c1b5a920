"""The worker's pure parts: memory guard, response formats, request parameters."""

from __future__ import annotations

import pytest

from asrpool_contract.formats import FORMATS, as_srt, as_verbose_json, as_vtt
from asrpool_contract.transcript import Segment, Transcript, Word
from asrpool_contract.wire import AsrpoolError, ErrorCode
from asrpool_worker.guard import MemoryCosts, MemoryGuard
from asrpool_worker.params import parse_request
from tests.support.subtitles import cue_times


def test_guard_admits_until_the_budget_then_refuses_and_recovers():
    guard = MemoryGuard(1000, MemoryCosts(model_mb=400, per_request_mb=100, per_audio_second_mb=10))
    first = guard.reserve(10)  # 200 MB
    second = guard.reserve(10)
    third = guard.reserve(10)
    assert first is not None and second is not None and third is not None  # 400 + 600 = 1000
    assert guard.reserve(0) is None
    guard.release(second)
    guard.release(second)  # twice is harmless
    assert guard.reserve(10) is not None
    assert guard.snapshot()["reservations"] == 3


def test_guard_without_budget_never_refuses():
    guard = MemoryGuard(0, MemoryCosts(model_mb=10_000))
    assert all(guard.reserve(3600) is not None for _ in range(50))


def test_guard_refuses_audio_too_long_for_an_empty_card():
    guard = MemoryGuard(500, MemoryCosts(model_mb=300, per_request_mb=50, per_audio_second_mb=1))
    assert guard.reserve(200) is None
    assert guard.reserved_mb == 0


TRANSCRIPT = Transcript(
    language="en",
    duration=4.2,
    segments=[
        Segment(
            0,
            0.0,
            1.5,
            " Hello there.",
            words=[Word(" Hello", 0.0, 0.6), Word(" there.", 0.7, 1.5)],
        ),
        Segment(1, 1.5, 3661.25, " General Kenobi."),
    ],
)


def test_srt_numbers_cues_and_uses_commas():
    srt = as_srt(TRANSCRIPT, False)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\nHello there.\n")
    assert "2\n00:00:01,500 --> 01:01:01,250\nGeneral Kenobi." in srt
    assert cue_times(srt) == [(0.0, 1.5), (1.5, 3661.25)]


def test_vtt_has_header_and_dots():
    vtt = as_vtt(TRANSCRIPT, False)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.")


def test_verbose_json_has_words_only_when_asked_and_usage_in_whole_seconds():
    body = as_verbose_json(TRANSCRIPT, True)
    assert body["language"] == "english" and body["text"] == "Hello there. General Kenobi."
    assert [w["word"] for w in body["words"]] == ["Hello", "there."]
    assert body["usage"] == {"type": "duration", "seconds": 5}
    assert "words" not in as_verbose_json(TRANSCRIPT, False)


def test_empty_transcript_renders_empty_everywhere():
    empty = Transcript(language="en", duration=30.0, segments=[])
    assert FORMATS["json"].render(empty, False)["text"] == ""
    assert FORMATS["text"].render(empty, False) == ""
    assert cue_times(FORMATS["srt"].render(empty, False)) == []


def fields(**kw: str) -> dict[str, list[str]]:
    return {k.replace("__", "[]"): [v] for k, v in kw.items()}


def test_params_accept_what_openai_clients_send():
    req = parse_request(
        {
            **fields(
                model="whisper-1",
                language="EN",
                prompt="Kenobi",
                temperature="0.2",
                response_format="verbose_json",
            ),
            "timestamp_granularities[]": ["word", "segment"],
        },
        task="transcribe",
        served_model="tiny.en",
    )
    assert req.response_format == "verbose_json"
    assert req.options.language == "en" and req.options.prompt == "Kenobi"
    assert req.options.temperature == 0.2 and req.options.word_timestamps


@pytest.mark.parametrize(
    ("given", "param"),
    [
        (fields(response_format="docx"), "response_format"),
        (fields(temperature="hot"), "temperature"),
        (fields(temperature="1.5"), "temperature"),
        (fields(language="english please"), "language"),
        ({"timestamp_granularities[]": ["word"]}, "timestamp_granularities[]"),
        (
            {"timestamp_granularities[]": ["char"], **fields(response_format="verbose_json")},
            "timestamp_granularities[]",
        ),
    ],
)
def test_params_reject_bad_values_naming_the_parameter(given, param):
    with pytest.raises(AsrpoolError) as err:
        parse_request(given, task="transcribe", served_model="tiny.en")
    assert err.value.code is ErrorCode.INVALID_REQUEST and err.value.param == param


def test_params_reject_a_model_this_worker_does_not_serve():
    with pytest.raises(AsrpoolError) as err:
        parse_request(fields(model="large-v3"), task="transcribe", served_model="tiny.en")
    assert err.value.code is ErrorCode.MODEL_NOT_FOUND


@pytest.mark.parametrize(
    ("response_format", "timestamps"),
    [("json", False), ("text", False), ("srt", True), ("vtt", True), ("verbose_json", True)],
)
def test_times_are_computed_only_for_formats_that_show_them(response_format, timestamps):
    req = parse_request(
        fields(response_format=response_format), task="transcribe", served_model="tiny.en"
    )
    assert req.options.timestamps is timestamps


def test_live_partials_ask_for_a_fast_draft():
    assert parse_request(
        {"asrpool_draft": ["true"]}, task="transcribe", served_model="tiny.en"
    ).options.draft
    assert not parse_request({}, task="transcribe", served_model="tiny.en").options.draft
