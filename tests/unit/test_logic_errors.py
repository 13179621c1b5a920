"""Classification of one attempt's answer (asrpool_router.logic.errors)."""

from __future__ import annotations

import json

import pytest

from asrpool_contract.wire import (
    ERROR_CODE_HEADER,
    OOM_MARKERS,
    ErrorCode,
    error_body,
    mentions_out_of_memory,
)
from asrpool_router.logic.errors import (
    AttemptResult,
    Outcome,
    OutcomeKind,
    PodVerdict,
    classify,
    pod_verdict,
)

XINFERENCE_OOM = json.dumps(
    {
        "detail": "Model actor is out of memory, model id: whisper-0, error: CUDA out of "
        "memory. Tried to allocate 1.34 GiB (GPU 0; 14.75 GiB total capacity)"
    }
)
TORCH_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
    "total capacity of 23.65 GiB of which 1.02 GiB is free."
)
CT2_OOM = "RuntimeError: CUDA failed with error out of memory"


def _body(code: ErrorCode) -> str:
    return json.dumps(error_body(code))


CASES = [
    # (name, result, expected kind, expected code)
    ("ok_200", AttemptResult(status=200, body_text='{"text":"hi"}'), OutcomeKind.OK, None),
    (
        "ok_200_transcript_mentioning_out_of_memory",
        AttemptResult(status=200, body_text='{"text":"the server ran out of memory"}'),
        OutcomeKind.OK,
        None,
    ),
    (
        "our_gpu_oom_header",
        AttemptResult(status=503, error_code_header="gpu_oom"),
        OutcomeKind.OOM,
        ErrorCode.GPU_OOM,
    ),
    (
        "our_gpu_oom_json_body",
        AttemptResult(status=503, body_text=_body(ErrorCode.GPU_OOM)),
        OutcomeKind.OOM,
        ErrorCode.GPU_OOM,
    ),
    (
        "pytorch_cuda_out_of_memory_text",
        AttemptResult(status=500, body_text=TORCH_OOM),
        OutcomeKind.OOM,
        ErrorCode.GPU_OOM,
    ),
    (
        "ctranslate2_cuda_failed_out_of_memory_text",
        AttemptResult(status=500, body_text=CT2_OOM),
        OutcomeKind.OOM,
        ErrorCode.GPU_OOM,
    ),
    (
        "xinference_model_actor_out_of_memory",
        AttemptResult(status=500, body_text=XINFERENCE_OOM),
        OutcomeKind.OOM,
        ErrorCode.GPU_OOM,
    ),
    (
        "internal_error_code_with_oom_text_is_oom",
        AttemptResult(status=500, error_code_header="internal_error", body_text=CT2_OOM),
        OutcomeKind.OOM,
        ErrorCode.GPU_OOM,
    ),
    (
        "internal_error_code_alone",
        AttemptResult(status=500, error_code_header="internal_error"),
        OutcomeKind.SERVER_ERROR,
        ErrorCode.INTERNAL_ERROR,
    ),
    (
        "invalid_audio_header",
        AttemptResult(status=400, error_code_header="invalid_audio", body_text="x"),
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_AUDIO,
    ),
    (
        "invalid_audio_json_body",
        AttemptResult(status=400, body_text=_body(ErrorCode.INVALID_AUDIO)),
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_AUDIO,
    ),
    (
        "plain_400_decode_failure_text",
        AttemptResult(status=400, body_text="Failed to decode audio: ffmpeg error"),
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_AUDIO,
    ),
    (
        "plain_400",
        AttemptResult(status=400, body_text="bad temperature"),
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_REQUEST,
    ),
    (
        "plain_422",
        AttemptResult(status=422, body_text='{"detail":[{"loc":["body","file"]}]}'),
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_REQUEST,
    ),
    ("status_413", AttemptResult(status=413), OutcomeKind.PERMANENT, ErrorCode.FILE_TOO_LARGE),
    (
        "file_too_large_header_wins_over_status",
        AttemptResult(status=400, error_code_header="file_too_large"),
        OutcomeKind.PERMANENT,
        ErrorCode.FILE_TOO_LARGE,
    ),
    ("status_415", AttemptResult(status=415), OutcomeKind.PERMANENT, ErrorCode.INVALID_AUDIO),
    (
        "service_unavailable_header",
        AttemptResult(status=503, error_code_header="service_unavailable"),
        OutcomeKind.UNAVAILABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "worker_queue_full",
        AttemptResult(status=429, body_text=_body(ErrorCode.QUEUE_FULL)),
        OutcomeKind.BUSY,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "worker_queue_timeout",
        AttemptResult(status=503, error_code_header="queue_timeout"),
        OutcomeKind.BUSY,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "plain_503",
        AttemptResult(status=503),
        OutcomeKind.UNAVAILABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    ("plain_429", AttemptResult(status=429), OutcomeKind.BUSY, ErrorCode.SERVICE_UNAVAILABLE),
    (
        "envoy_503_text_plain",
        AttemptResult(status=503, body_text="no healthy upstream"),
        OutcomeKind.UNAVAILABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "envoy_502_reset_before_headers",
        AttemptResult(
            status=502,
            body_text="upstream connect error or disconnect/reset before headers. "
            "reset reason: connection termination",
        ),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "nginx_500_html_page",
        AttemptResult(status=500, body_text="<html><body><h1>500 Internal Server Error</h1>"),
        OutcomeKind.SERVER_ERROR,
        ErrorCode.INTERNAL_ERROR,
    ),
    (
        "trickling_answer_past_the_deadline",
        AttemptResult(transport_error="deadline_timeout"),
        OutcomeKind.TIMEOUT,
        ErrorCode.TIMEOUT,
    ),
    (
        "answer_too_large",
        AttemptResult(transport_error="answer_too_large"),
        OutcomeKind.BAD_ANSWER,
        ErrorCode.INTERNAL_ERROR,
    ),
    (
        "model_load_failed_header",
        AttemptResult(status=503, error_code_header="model_load_failed"),
        OutcomeKind.MODEL_LOAD_FAILED,
        ErrorCode.MODEL_LOAD_FAILED,
    ),
    (
        "model_load_failed_text",
        AttemptResult(status=500, body_text='{"detail":"Failed to load model whisper-large"}'),
        OutcomeKind.MODEL_LOAD_FAILED,
        ErrorCode.MODEL_LOAD_FAILED,
    ),
    (
        "timeout_header",
        AttemptResult(status=504, error_code_header="timeout"),
        OutcomeKind.TIMEOUT,
        ErrorCode.TIMEOUT,
    ),
    ("plain_504", AttemptResult(status=504), OutcomeKind.TIMEOUT, ErrorCode.TIMEOUT),
    ("plain_408", AttemptResult(status=408), OutcomeKind.TIMEOUT, ErrorCode.TIMEOUT),
    (
        "plain_502",
        AttemptResult(status=502),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "plain_500",
        AttemptResult(status=500, body_text="Traceback ..."),
        OutcomeKind.SERVER_ERROR,
        ErrorCode.INTERNAL_ERROR,
    ),
    (
        "worker_refuses_our_key",
        AttemptResult(status=401, error_code_header="unauthorized"),
        OutcomeKind.SERVER_ERROR,
        ErrorCode.INTERNAL_ERROR,
    ),
    (
        "worker_does_not_serve_the_model",
        AttemptResult(status=404, body_text=_body(ErrorCode.MODEL_NOT_FOUND)),
        OutcomeKind.SERVER_ERROR,
        ErrorCode.INTERNAL_ERROR,
    ),
    (
        "unknown_header_code_falls_back_to_status",
        AttemptResult(status=503, error_code_header="teapot"),
        OutcomeKind.UNAVAILABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "malformed_json_body_falls_back_to_status",
        AttemptResult(status=400, body_text="{not json"),
        OutcomeKind.PERMANENT,
        ErrorCode.INVALID_REQUEST,
    ),
    (
        "connection_refused",
        AttemptResult(transport_error="connect"),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "connect_timeout_is_unreachable",
        AttemptResult(transport_error="connect_timeout"),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "connection_reset",
        AttemptResult(transport_error="reset"),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "read_timeout",
        AttemptResult(transport_error="read_timeout"),
        OutcomeKind.TIMEOUT,
        ErrorCode.TIMEOUT,
    ),
    (
        "write_timeout",
        AttemptResult(transport_error="write_timeout"),
        OutcomeKind.TIMEOUT,
        ErrorCode.TIMEOUT,
    ),
    (
        "unknown_transport_error",
        AttemptResult(transport_error="weird"),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "transport_error_wins_over_status",
        AttemptResult(status=200, transport_error="reset"),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "no_status_no_transport_error",
        AttemptResult(),
        OutcomeKind.UNREACHABLE,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
]


@pytest.mark.parametrize(
    ("result", "kind", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_classify_table(result: AttemptResult, kind: OutcomeKind, code: ErrorCode | None) -> None:
    outcome = classify(result)
    assert outcome.kind is kind
    assert outcome.code == code


def test_xinference_out_of_memory_text_is_classified_as_oom() -> None:
    assert classify(AttemptResult(status=500, body_text=XINFERENCE_OOM)).kind is OutcomeKind.OOM


def test_error_code_header_name_matches_the_wire_contract() -> None:
    # The shell reads the header named in the wire contract into error_code_header.
    assert ERROR_CODE_HEADER == "x-asrpool-error-code"


def test_header_code_is_case_insensitive() -> None:
    outcome = classify(AttemptResult(status=503, error_code_header=" GPU_OOM "))
    assert outcome.kind is OutcomeKind.OOM


@pytest.mark.parametrize(
    ("kind", "transient"),
    [
        (OutcomeKind.OK, False),
        (OutcomeKind.CANCELLED, False),
        (OutcomeKind.PERMANENT, False),
        (OutcomeKind.OOM, True),
        (OutcomeKind.UNREACHABLE, True),
        (OutcomeKind.TIMEOUT, True),
        (OutcomeKind.BUSY, True),
        (OutcomeKind.UNAVAILABLE, True),
        (OutcomeKind.BAD_ANSWER, True),
        (OutcomeKind.MODEL_LOAD_FAILED, True),
        (OutcomeKind.SERVER_ERROR, True),
    ],
)
def test_only_failures_that_may_pass_are_transient(kind: OutcomeKind, transient: bool) -> None:
    assert Outcome.of(kind).transient is transient


def test_every_wire_code_sent_by_a_worker_classifies_without_error() -> None:
    for code in ErrorCode:
        outcome = classify(AttemptResult(status=500, error_code_header=code.value))
        assert outcome.kind not in (OutcomeKind.OK, OutcomeKind.CANCELLED)
        assert outcome.code is not None


# --- 2xx answers against the requested format (logic/answers.py) -----------------------

TRANSCRIPT = b'{"text": "hello"}'
ANSWERS = [
    # (name, response_format, content type, body, is a transcription)
    ("json", "json", "application/json", TRANSCRIPT, True),
    ("json_of_silence", "json", "application/json", b'{"text": ""}', True),
    ("verbose_json", "verbose_json", "application/json", b'{"text": "a", "segments": []}', True),
    ("json_without_content_type", "json", "", TRANSCRIPT, True),
    ("html_login_page", "json", "text/html; charset=utf-8", b"<html><body>Sign in", False),
    ("html_labelled_as_json", "json", "application/json", b"<!DOCTYPE html><html>", False),
    ("html_for_text", "text", "text/html", b"<html>", False),
    ("empty_json", "json", "application/json", b"", False),
    ("truncated_json", "json", "application/json", b'{"text": "hel', False),
    ("not_json", "json", "application/json", b"{'text': 'hello'}", False),
    ("json_list", "json", "application/json", b'["hello"]', False),
    ("json_without_text", "json", "application/json", b'{"result": "hello"}', False),
    ("text_not_a_string", "json", "application/json", b'{"text": 5}', False),
    ("error_object_with_200", "json", "application/json", b'{"error": {"message": "x"}}', False),
    ("error_object_for_text", "text", "application/json", b'{"error": "quota"}', False),
    ("plain_text", "text", "text/plain; charset=utf-8", b"hello\n", True),
    ("text_of_silence", "text", "text/plain", b"", True),
    ("not_utf8", "text", "text/plain", b"\xff\xfe\x00h", False),
    ("srt", "srt", "application/x-subrip", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n", True),
    ("srt_of_silence", "srt", "application/x-subrip", b"", True),
    ("srt_that_is_not", "srt", "application/x-subrip", b"hello there", False),
    ("vtt", "vtt", "text/vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n", True),
    ("vtt_with_bom", "vtt", "text/vtt", "\ufeffWEBVTT\n".encode(), True),
    ("vtt_without_header", "vtt", "text/vtt", b"00:00.000 --> 00:01.000\nhi", False),
]


@pytest.mark.parametrize(
    ("response_format", "content_type", "body", "valid"),
    [a[1:] for a in ANSWERS],
    ids=[a[0] for a in ANSWERS],
)
def test_a_2xx_must_be_a_transcription_in_the_requested_format(
    response_format: str, content_type: str, body: bytes, valid: bool
) -> None:
    result = AttemptResult(status=200, content_type=content_type, body=body)
    kind = classify(result, response_format).kind
    assert kind is (OutcomeKind.OK if valid else OutcomeKind.BAD_ANSWER)
    # Without a format to check against, any 2xx is taken as a transcript.
    assert classify(result).kind is OutcomeKind.OK


def test_capacity_refusals_say_nothing_about_the_pod_until_the_budget_is_at_its_floor() -> None:
    oom = Outcome.of(OutcomeKind.OOM)
    assert pod_verdict(oom, budget_at_floor=False) is PodVerdict.NEUTRAL
    assert pod_verdict(oom, budget_at_floor=True) is PodVerdict.FAULT
    assert pod_verdict(Outcome.of(OutcomeKind.BUSY), budget_at_floor=False) is PodVerdict.NEUTRAL
    for kind in (OutcomeKind.OK, OutcomeKind.PERMANENT):
        assert pod_verdict(Outcome.of(kind), budget_at_floor=True) is PodVerdict.ALIVE
    assert pod_verdict(Outcome.of(OutcomeKind.CANCELLED), budget_at_floor=True) is (
        PodVerdict.NEUTRAL
    )
    for kind in (
        OutcomeKind.UNREACHABLE,
        OutcomeKind.TIMEOUT,
        OutcomeKind.UNAVAILABLE,
        OutcomeKind.MODEL_LOAD_FAILED,
        OutcomeKind.BAD_ANSWER,
        OutcomeKind.SERVER_ERROR,
    ):
        assert pod_verdict(Outcome.of(kind), budget_at_floor=False) is PodVerdict.FAULT


@pytest.mark.parametrize("marker", OOM_MARKERS)
def test_the_router_reads_every_oom_wording_the_worker_knows(marker: str) -> None:
    """One list (asrpool_contract.wire.OOM_MARKERS) for both sides: whatever makes a worker answer
    gpu_oom also makes the router see an OOM in any other server's text, in any case."""
    text = f"RuntimeError: {marker.upper()} (device 0)"
    assert mentions_out_of_memory(text)
    assert classify(AttemptResult(status=500, body_text=text)).kind is OutcomeKind.OOM
