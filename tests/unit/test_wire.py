"""The shared wire contract: error shape, codes, languages, OOM texts."""

from __future__ import annotations

import re

import pytest

from asrpool_contract.wire import (
    ERRORS,
    AsrpoolError,
    ErrorCode,
    error_body,
    mentions_out_of_memory,
    parse_error,
    wants_chinese,
)

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_renders_in_openai_shape_in_both_languages(code: ErrorCode):
    for chinese in (False, True):
        body = error_body(code, chinese=chinese)
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == code.value and body["error"]["message"]
    english, chinese = (error_body(code, chinese=c)["error"]["message"] for c in (False, True))
    # The catalogue's words in each language, and each really in its language: a renderer
    # that ignored ``chinese`` (or a catalogue entry left untranslated) fails here.
    assert (english, chinese) == (ERRORS[code].en, ERRORS[code].zh)
    assert CJK.search(chinese), chinese
    assert not CJK.search(english), english


@pytest.mark.parametrize(
    ("header", "chinese"),
    [
        ("zh", True),
        ("zh-CN,zh;q=0.9", True),
        ("zh-Hans", True),
        ("en-US,zh;q=0.5", False),
        ("", False),
        (None, False),
        ("fr", False),
    ],
)
def test_accept_language_picks_chinese_only_when_first(header, chinese):
    assert wants_chinese(header) is chinese


def test_chinese_message_names_the_bad_parameter():
    body = error_body(
        ErrorCode.INVALID_REQUEST, "temperature must be…", param="temperature", chinese=True
    )
    assert "temperature" in body["error"]["message"] and "参数" in body["error"]["message"]


@pytest.mark.parametrize(
    "text",
    [
        "CUDA out of memory. Tried to allocate 1.34 GiB",
        "CUDA failed with error out of memory",
        "Model actor is out of memory, model id: whisper-0",
        "RuntimeError: CUDA_ERROR_OUT_OF_MEMORY",
    ],
)
def test_engine_oom_texts_are_recognised(text: str):
    assert mentions_out_of_memory(text)


def test_other_texts_are_not_oom():
    assert not mentions_out_of_memory("Invalid data found when processing input")


def test_parse_error_reads_back_our_shape_and_others():
    assert parse_error(error_body(ErrorCode.GPU_OOM)) == (
        ErrorCode.GPU_OOM,
        ERRORS[ErrorCode.GPU_OOM].en,
    )
    assert parse_error({"error": {"code": "weird", "message": "m"}}) == (None, "m")
    assert parse_error({"detail": "Model actor is out of memory"}) == (
        None,
        "Model actor is out of memory",
    )


def test_asrpool_error_carries_status_and_retry_after():
    err = AsrpoolError(ErrorCode.QUEUE_FULL, retry_after_s=3.2)
    assert err.status == 429 and err.retry_after_s == 3.2
    assert ERRORS[ErrorCode.FILE_TOO_LARGE].status == 413
    assert not ERRORS[ErrorCode.INVALID_AUDIO].transient and ERRORS[ErrorCode.GPU_OOM].transient
