"""The worker's reading of OpenAI's form fields (asrpool_worker.params): honoured or refused."""

from __future__ import annotations

import pytest

from asrpool_contract.wire import AsrpoolError, ErrorCode
from asrpool_worker.engine import VadSettings
from asrpool_worker.params import parse_request


def parse(**fields: str | list[str]):  # type: ignore[no-untyped-def]
    as_lists = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
    return parse_request(as_lists, task="transcribe", served_model="tiny.en")


def refused(**fields: str | list[str]) -> AsrpoolError:
    with pytest.raises(AsrpoolError) as err:
        parse(**fields)
    return err.value


@pytest.mark.parametrize(
    "model", ["tiny.en", "whisper-1", "gpt-4o-mini-transcribe", "gpt-transcribe", ""]
)
def test_the_served_model_and_openais_names_are_accepted(model: str) -> None:
    assert parse(model=model).response_format == "json"


def test_another_model_is_not_found() -> None:
    assert refused(model="large-v3").code is ErrorCode.MODEL_NOT_FOUND


def test_a_stream_keeps_segment_timestamps_so_that_each_segment_is_a_delta() -> None:
    request = parse(stream="true")
    assert request.stream and request.options.timestamps
    assert not parse(stream="false").stream
    assert not parse().options.timestamps  # plain json: one window decodes faster without


STREAM_TABLE = [
    ("json", True),
    ("text", True),
    ("srt", False),
    ("vtt", False),
    ("verbose_json", False),
]


@pytest.mark.parametrize(("response_format", "ok"), STREAM_TABLE)
def test_only_json_and_text_stream(response_format: str, ok: bool) -> None:
    if ok:
        assert parse(stream="true", response_format=response_format).stream
    else:
        assert refused(stream="true", response_format=response_format).param == "stream"


def test_logprobs_are_asked_with_include_and_only_for_json() -> None:
    assert parse(**{"include[]": "logprobs"}).options.logprobs
    assert refused(**{"include[]": "tokens"}).param == "include[]"
    assert refused(response_format="text", **{"include[]": "logprobs"}).param == "include[]"


@pytest.mark.parametrize(
    ("fields", "vad"),
    [
        ({}, None),
        ({"chunking_strategy": "auto"}, None),
        ({"chunking_strategy[type]": "server_vad"}, VadSettings()),
        (
            {
                "chunking_strategy[type]": "server_vad",
                "chunking_strategy[threshold]": "0.7",
                "chunking_strategy[silence_duration_ms]": "450",
                "chunking_strategy[prefix_padding_ms]": "100",
            },
            VadSettings(threshold=0.7, prefix_padding_ms=100, silence_duration_ms=450),
        ),
        (
            {"chunking_strategy": '{"type": "server_vad", "threshold": 0.3}'},
            VadSettings(threshold=0.3),
        ),
    ],
)
def test_chunking_strategy_becomes_the_vad_settings(
    fields: dict[str, str], vad: VadSettings | None
) -> None:
    assert parse(**fields).options.vad == vad


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"chunking_strategy[type]": "semantic"}, "chunking_strategy[type]"),
        ({"chunking_strategy[type]": "server_vad", "chunking_strategy[threshold]": "1.5"},
         "chunking_strategy[threshold]"),
        ({"chunking_strategy[type]": "server_vad", "chunking_strategy[eagerness]": "high"},
         "chunking_strategy[eagerness]"),
        ({"chunking_strategy[type]": "server_vad", "chunking_strategy[silence_duration_ms]": "x"},
         "chunking_strategy[silence_duration_ms]"),
        ({"chunking_strategy": "sometimes"}, "chunking_strategy"),
    ],
)  # fmt: skip
def test_a_bad_chunking_strategy_names_its_field(fields: dict[str, str], param: str) -> None:
    err = refused(**fields)
    assert (err.code, err.param) == (ErrorCode.INVALID_REQUEST, param)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "diarized_json"}, "response_format"),
        ({"known_speaker_names[]": "agent"}, "known_speaker_names[]"),
        ({"known_speaker_references[]": "data:audio/wav;base64,A"}, "known_speaker_references[]"),
        ({"languages[]": "english"}, "languages[]"),
        ({"asrpool_offset": "-1"}, "asrpool_offset"),
        ({"stream": "maybe"}, "stream"),
    ],
)  # fmt: skip
def test_what_cannot_be_done_is_refused_naming_the_field(
    fields: dict[str, str], param: str
) -> None:
    assert refused(**fields).param == param


def test_keywords_steer_the_prompt_and_languages_are_kept() -> None:
    opts = parse(prompt="Minutes.", **{"keywords[]": ["Kubernetes", "asrpool"]}).options
    assert opts.prompt == "Minutes. Kubernetes, asrpool"
    assert parse(**{"languages[]": ["EN", "fr"]}).options.languages == ("en", "fr")


def test_a_resumed_stream_starts_at_its_offset() -> None:
    assert parse(asrpool_offset="12.5").options.offset_s == 12.5
