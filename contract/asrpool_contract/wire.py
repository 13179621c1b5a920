"""The wire contract that the router, the worker and the clients share.

One home for the stable error codes, their HTTP statuses, their OpenAI error
types and the words a user reads (English, and 简体中文 for users who ask with
``Accept-Language: zh``, as the team we replace did). Every error that leaves an
asrpool process is built here, in OpenAI's shape::

    {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}

Codes are an API: clients branch on them, so never rename one.

Pure: no I/O, no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from typing_extensions import TypedDict  # pydantic reads these on Python 3.11

# What Whisper reads: mono at 16 kHz. Every part that cuts, resamples or measures audio uses it.
WHISPER_SAMPLE_RATE = 16_000

# Header the worker sets on answers so the router can classify without parsing text.
ERROR_CODE_HEADER = "x-asrpool-error-code"
# The model names OpenAI's SDK and docs use for transcription (openai.types.AudioModel, 3.57),
# dated variants included: a client copied from OpenAI's docs sends one of these, and every
# one of them means "the default pool". whisper-1 first: what older clients send.
OPENAI_DEFAULT_MODEL = "whisper-1"
OPENAI_TRANSCRIPTION_MODELS = (
    OPENAI_DEFAULT_MODEL,
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe-diarize",
)

# Headers the worker sets on every answer: its own slot count and how many of them are in
# use once this answer is sent (all routers' requests), so a fleet of routers converges on
# what each pod really has free.
SLOTS_HEADER = "x-asrpool-slots"
IN_FLIGHT_HEADER = "x-asrpool-in-flight"


class ErrorCode(StrEnum):
    GPU_OOM = "gpu_oom"
    MODEL_LOAD_FAILED = "model_load_failed"
    SERVICE_UNAVAILABLE = "service_unavailable"
    FILE_TOO_LARGE = "file_too_large"
    TIMEOUT = "timeout"
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    INVALID_AUDIO = "invalid_audio"
    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    MODEL_NOT_FOUND = "model_not_found"
    NOT_FOUND = "not_found"
    INTERNAL_ERROR = "internal_error"
    REQUEST_TIMEOUT = "request_timeout"
    # A worker whose slots are all taken (by any router's requests): not a failure.
    WORKER_BUSY = "worker_busy"


@dataclass(frozen=True)
class ErrorSpec:
    """How one error code looks on the wire, and what it tells the user."""

    status: int
    type: str
    en: str
    zh: str
    # Transient errors may succeed elsewhere or later; permanent ones never will.
    transient: bool
    # The answer says when to come back (a Retry-After header, whole seconds).
    retry_after: bool = False


_INVALID = "invalid_request_error"
_SERVER = "server_error"

ERRORS: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.GPU_OOM: ErrorSpec(
        503,
        _SERVER,
        "GPU memory is full; the request was retried on other GPUs and still failed. "
        "Try again in a minute, or send shorter audio.",
        "GPU显存不足：请求已在其他GPU上重试，仍然失败。请稍后重试，或上传较短的音频。",
        transient=True,
    ),
    ErrorCode.MODEL_LOAD_FAILED: ErrorSpec(
        503,
        _SERVER,
        "The speech model could not be loaded on the server. "
        "Ask the operator to check the pool's status (asrpool status).",
        "ASR模型加载失败，请联系管理员检查服务状态（asrpool status）。",
        transient=True,
    ),
    ErrorCode.SERVICE_UNAVAILABLE: ErrorSpec(
        503,
        _SERVER,
        "No speech server is available right now. Try again shortly.",
        "ASR服务暂时不可用，请稍后重试。",
        transient=True,
    ),
    ErrorCode.FILE_TOO_LARGE: ErrorSpec(
        413,
        _INVALID,
        "The audio file is too large. Send a shorter recording or split it into parts.",
        "音频文件过大，请尝试较短的音频或将其分段上传。",
        transient=False,
    ),
    ErrorCode.TIMEOUT: ErrorSpec(
        504,
        _SERVER,
        "The speech server took too long to answer. Try again later.",
        "ASR服务响应超时，请稍后重试。",
        transient=True,
    ),
    ErrorCode.QUEUE_FULL: ErrorSpec(
        429,
        "rate_limit_error",
        "Too many requests are waiting. Retry after the time in the Retry-After header.",
        "排队的请求过多，请在 Retry-After 头所示的时间后重试。",
        transient=True,
        retry_after=True,
    ),
    ErrorCode.QUEUE_TIMEOUT: ErrorSpec(
        503,
        _SERVER,
        "The request waited too long for a free GPU. Try again later.",
        "请求等待空闲GPU的时间过长，请稍后重试。",
        transient=True,
    ),
    ErrorCode.INVALID_AUDIO: ErrorSpec(
        400,
        _INVALID,
        "The file is not audio that can be decoded. Send wav, flac, mp3, ogg, webm or m4a.",
        "无法解码该文件的音频，请上传 wav、flac、mp3、ogg、webm 或 m4a 格式的音频。",
        transient=False,
    ),
    ErrorCode.INVALID_REQUEST: ErrorSpec(
        400,
        _INVALID,
        "The request has an invalid parameter.",
        "请求参数无效。",
        transient=False,
    ),
    ErrorCode.UNAUTHORIZED: ErrorSpec(
        401,
        "authentication_error",
        "Missing or wrong API key. Send it as 'Authorization: Bearer <key>'.",
        "API密钥缺失或错误，请以“Authorization: Bearer <密钥>”的形式发送。",
        transient=False,
    ),
    ErrorCode.MODEL_NOT_FOUND: ErrorSpec(
        404,
        _INVALID,
        "This model is not served here. GET /v1/models lists the models you can use.",
        "此处不提供该模型，可通过 GET /v1/models 查看可用模型。",
        transient=False,
    ),
    ErrorCode.NOT_FOUND: ErrorSpec(
        404,
        _INVALID,
        "No such route.",
        "请求的路径不存在。",
        transient=False,
    ),
    ErrorCode.INTERNAL_ERROR: ErrorSpec(
        500,
        _SERVER,
        "The server failed unexpectedly. Try again; if it keeps failing, tell the operator.",
        "服务器内部错误，请重试；如持续失败，请联系管理员。",
        transient=True,
    ),
    # The client's own connection was too slow: another pod would not help, so not transient.
    ErrorCode.WORKER_BUSY: ErrorSpec(
        503,
        _SERVER,
        "This speech server is busy with other requests; another one can take this request. "
        "Try again shortly.",
        "该语音服务器正忙于处理其他请求，请稍后重试，其他服务器可以处理此请求。",
        transient=True,
    ),
    ErrorCode.REQUEST_TIMEOUT: ErrorSpec(
        408,
        _INVALID,
        "The upload arrived too slowly and was stopped. Check the connection and send it again.",
        "上传数据到达过慢，已被中止。请检查网络连接后重新发送。",
        transient=False,
    ),
}


# How out-of-memory reads in the texts of the engines we front: PyTorch ("CUDA out of
# memory. Tried to allocate…", "OutOfMemoryError"), CTranslate2 ("CUDA failed with error out
# of memory"), Xinference ("Model actor is out of memory"), TensorFlow ("OOM when
# allocating"), and the allocators' status names. One list, lower case, for the worker
# (which reads its engine's exceptions) and the router (which reads any pod's answer).
OOM_MARKERS = (
    "out of memory",
    "outofmemoryerror",
    "cuda_error_out_of_memory",
    "cudaerrormemoryallocation",
    "cublas_status_alloc_failed",
    "failed to allocate memory",
    "oom when allocating",
)


def mentions_out_of_memory(text: str) -> bool:
    """True when an engine's error text says the GPU (or host) ran out of memory."""
    lowered = text.lower()
    return any(marker in lowered for marker in OOM_MARKERS)


def wants_chinese(accept_language: str | None) -> bool:
    """True when the first language the client names is Chinese (zh, zh-CN, zh-Hans…)."""
    if not accept_language:
        return False
    first = accept_language.split(",")[0].split(";")[0].strip().lower()
    return first == "zh" or first.startswith("zh-")


class ErrorObject(TypedDict):
    """OpenAI's error object: ``code`` is one of ``ErrorCode``, ``type`` its catalogue type."""

    message: str
    type: str
    param: str | None
    code: str


class ErrorResponse(TypedDict):
    """Every error answer's body (the OpenAPI document is generated from this type)."""

    error: ErrorObject


def error_body(
    code: ErrorCode,
    message: str | None = None,
    *,
    param: str | None = None,
    chinese: bool = False,
) -> ErrorResponse:
    """The OpenAI-shaped error body for ``code``.

    ``message`` overrides the catalogue's words (e.g. to name the bad parameter);
    it must be written for the user, never a raw backend text.
    """
    spec = ERRORS[code]
    if chinese:
        # Our specific messages are English; a Chinese reader gets the catalogue's words
        # and, where one is to blame, the parameter's name.
        text = spec.zh if param is None else f"{spec.zh}（参数：{param}）"
    else:
        text = message if message is not None else spec.en
    return {"error": {"message": text, "type": spec.type, "param": param, "code": code.value}}


def parse_error(body: Any) -> tuple[ErrorCode | None, str]:
    """Read an OpenAI-shaped error body back: (known code or None, message)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = str(err.get("message") or "")
        try:
            return ErrorCode(str(err.get("code"))), message
        except ValueError:
            return None, message
    if isinstance(body, dict) and "detail" in body:
        return None, str(body["detail"])
    return None, str(body)


class AsrpoolError(Exception):
    """An error with a stable code, raised inside our services and rendered by ``error_body``."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message or ERRORS[code].en)
        self.code = code
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return ERRORS[self.code].status
