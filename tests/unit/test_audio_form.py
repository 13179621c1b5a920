"""One model of the audio form (asrpool_contract.audio_form): what it reads, refuses, matches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asrpool_contract.audio_form import (
    DRAFT_FIELD,
    LIVE_FIELD,
    RESPONSE_FORMATS,
    AudioForm,
    ServerVad,
    read_form,
)
from asrpool_contract.formats import FORMATS
from asrpool_contract.transcript_stream import OFFSET_FIELD
from asrpool_contract.wire import AsrpoolError, ErrorCode
from asrpool_worker.engine import VadSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openai.md"


def wire_names() -> set[str]:
    return {info.alias or name for name, info in AudioForm.model_fields.items()}


def test_every_field_docs_openai_md_lists_is_in_the_model_and_back() -> None:
    table = DOCS.read_text().split("## Every field", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([a-z_]+(?:\[\])?)`", row.split("|")[1])
    }
    own = {DRAFT_FIELD, LIVE_FIELD, OFFSET_FIELD}  # asrpool's fields, between router and worker
    assert documented - {"file"} == wire_names() - own
    assert own <= wire_names()


def test_the_worker_renders_every_format_the_form_takes() -> None:
    assert tuple(FORMATS) == RESPONSE_FORMATS


def test_server_vad_defaults_are_the_engines() -> None:
    vad = ServerVad(type="server_vad")
    assert VadSettings() == VadSettings(
        threshold=vad.threshold,
        prefix_padding_ms=vad.prefix_padding_ms,
        silence_duration_ms=vad.silence_duration_ms,
    )


def test_sdk_bracket_fields_and_bare_names_and_json_are_read_alike() -> None:
    assert read_form({"include[]": ["logprobs"]}).logprobs
    assert read_form({"include": ["logprobs"]}).logprobs
    vad = ServerVad(type="server_vad", threshold=0.25)
    assert (
        read_form(
            {"chunking_strategy[type]": ["server_vad"], "chunking_strategy[threshold]": ["0.25"]}
        ).chunking_strategy
        == vad
    )
    assert (
        read_form(
            {"chunking_strategy": ['{"type": "server_vad", "threshold": 0.25}']}
        ).chunking_strategy
        == vad
    )
    # A client generated from the OpenAPI document may send the string JSON-encoded.
    assert read_form({"chunking_strategy": ['"auto"']}).chunking_strategy == "auto"
    assert read_form({"language": [" EN "], "temperature": [""]}).language == "en"
    assert read_form({"stream": ["true"]}).stream and not read_form({"stream": ["0"]}).stream


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"temperature": ["2"]}, "temperature", "from 0 to 1"),
        ({"temperature": ["nan"]}, "temperature", "from 0 to 1"),
        ({"response_format": ["xml"]}, "response_format", "'verbose_json'"),
        ({"chunking_strategy": ["sometimes"]}, "chunking_strategy", "'auto' or an object"),
        ({"chunking_strategy[type]": ["server_vad"], "chunking_strategy[threshold]": ["1e400"]},
         "chunking_strategy[threshold]", "from 0 to 1"),
        # Found by fuzzing: int(float("inf")) raised OverflowError, a 500.
        ({"chunking_strategy[type]": ["server_vad"],
          "chunking_strategy[prefix_padding_ms]": ["inf"]},
         "chunking_strategy[prefix_padding_ms]", "whole number from 0 to 10000"),
        ({"chunking_strategy": ['{"type": "server_vad", "silence_duration_ms": 1e999}']},
         "chunking_strategy[silence_duration_ms]", "whole number"),
        ({"chunking_strategy[threshold]": ["0.4"]}, "chunking_strategy[type]", "'server_vad'"),
        ({"language": ["english"]}, "language", "ISO-639-1"),
        ({"timestamp_granularities[]": ["char"]}, "timestamp_granularities[]", "'word'"),
        ({"timestamp_granularities[]": ["word"]}, "timestamp_granularities[]", "verbose_json"),
        ({"asrpool_offset": ["1e9"]}, "asrpool_offset", "from 0 to 86400"),
        ({"asrpool_draft": ["perhaps"]}, "asrpool_draft", "true or false"),
    ],
)  # fmt: skip
def test_a_refusal_names_the_field_and_says_what_it_takes(
    fields: dict[str, list[str]], param: str, says: str
) -> None:
    with pytest.raises(AsrpoolError) as err:
        read_form(fields)
    assert (err.value.code, err.value.param) == (ErrorCode.INVALID_REQUEST, param)
    assert says in str(err.value.message)
