"""Classification of one attempt's answer (asrpool_router.logic.errors)."""

from __future__ import annotations

import json

import pytest

from asrpool.wire import ERROR_CODE_HEADER, ErrorCode, error_body
from asrpool_router.logic.errors import AttemptResult, Outcome, OutcomeKind, classify

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
        OutcomeKind.OVERLOADED,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "worker_queue_full",
        AttemptResult(status=429, body_text=_body(ErrorCode.QUEUE_FULL)),
        OutcomeKind.OVERLOADED,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    (
        "worker_queue_timeout",
        AttemptResult(status=503, error_code_header="queue_timeout"),
        OutcomeKind.OVERLOADED,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    ("plain_503", AttemptResult(status=503), OutcomeKind.OVERLOADED, ErrorCode.SERVICE_UNAVAILABLE),
    ("plain_429", AttemptResult(status=429), OutcomeKind.OVERLOADED, ErrorCode.SERVICE_UNAVAILABLE),
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
        OutcomeKind.OVERLOADED,
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
        (OutcomeKind.OVERLOADED, True),
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
