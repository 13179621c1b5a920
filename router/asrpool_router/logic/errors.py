"""Classify one attempt's answer from a worker into an outcome kind.

The transport shell turns whatever happened on the wire (an HTTP answer, an httpx
exception) into a plain ``AttemptResult`` and calls ``classify``. ``Pool.release`` feeds
the kind to the pod's budget and breaker; ``retry.decide`` turns it into a retry or a
give-up. Low-level failures are mapped here, once.

The outcome tree::

    Outcome
    ├── OK                  2xx with a transcription in the requested format
    ├── CANCELLED           our client went away; says nothing about the pod
    ├── POD_FULL            our worker's slots are all taken, by any router (worker_busy):
    │                       says nothing about the pod, cuts no budget → service_unavailable
    ├── capacity: the pod refused only because it was asked for too much at once
    │   ├── OOM             GPU out of memory (our gpu_oom code, PyTorch, CTranslate2,
    │   │                   Xinference texts)          → final code gpu_oom
    │   └── BUSY            429, the worker's own queue full or timed out
    │                                              → service_unavailable
    ├── faults: the pod failed this request; another pod may not
    │   ├── UNREACHABLE     refused, reset, closed, pod killed, 502
    │   │                                              → service_unavailable
    │   ├── TIMEOUT         read/write timeout, no whole answer in time, 504, 408
    │   │                                              → timeout
    │   ├── UNAVAILABLE     503: loading, recovering, a proxy with no healthy upstream
    │   │                                              → service_unavailable
    │   ├── MODEL_LOAD_FAILED  the pod could not load its model → model_load_failed
    │   ├── BAD_ANSWER      a 2xx that is not a transcription in the requested format
    │   │                   (an HTML page, empty or truncated JSON, an error object)
    │   │                                              → internal_error
    │   └── SERVER_ERROR    any other 5xx, or the worker refusing us (401/403/404:
    │                       a configuration fault of ours, not the user's)
    │                                              → internal_error
    └── PERMANENT           the user's input is bad (invalid_audio, file_too_large,
                            invalid_request); never retried; carries its code

A pod's report of its own load (``pod_load.py``, from our worker's headers) rides on the
outcome, whatever the outcome is.

What the pool does with each family (``retry.py``, ``breaker.py``): a capacity refusal
cuts the pod's budget and the request waits for room again, on the same pod too; at the
budget's floor (the pod cannot take even one such request) it counts as a fault. A fault
keeps the request off that pod for good and counts towards ejecting the pod.

Precedence: transport error, then 2xx, then an explicit error code (header
``x-asrpool-error-code``, then an OpenAI-shaped JSON body), then well-known texts, then
the HTTP status. A generic ``internal_error`` code does not hide a more specific text
(a worker that failed to recognise its own OOM still says "out of memory").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from asrpool_contract.wire import ERRORS, ErrorCode, mentions_out_of_memory, parse_error

from .answers import answer_problem
from .pod_load import PodLoad


class OutcomeKind(StrEnum):
    """What one attempt on one pod came to."""

    OK = "ok"
    POD_FULL = "pod_full"
    OOM = "oom"
    BUSY = "busy"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    MODEL_LOAD_FAILED = "model_load_failed"
    BAD_ANSWER = "bad_answer"
    SERVER_ERROR = "server_error"
    PERMANENT = "permanent"
    CANCELLED = "cancelled"


# The code the user gets when the last attempt ended this way (PERMANENT carries its own).
_FINAL_CODE: dict[OutcomeKind, ErrorCode] = {
    OutcomeKind.POD_FULL: ErrorCode.SERVICE_UNAVAILABLE,
    OutcomeKind.OOM: ErrorCode.GPU_OOM,
    OutcomeKind.UNREACHABLE: ErrorCode.SERVICE_UNAVAILABLE,
    OutcomeKind.TIMEOUT: ErrorCode.TIMEOUT,
    OutcomeKind.BUSY: ErrorCode.SERVICE_UNAVAILABLE,
    OutcomeKind.UNAVAILABLE: ErrorCode.SERVICE_UNAVAILABLE,
    OutcomeKind.MODEL_LOAD_FAILED: ErrorCode.MODEL_LOAD_FAILED,
    OutcomeKind.BAD_ANSWER: ErrorCode.INTERNAL_ERROR,
    OutcomeKind.SERVER_ERROR: ErrorCode.INTERNAL_ERROR,
    OutcomeKind.PERMANENT: ErrorCode.INVALID_REQUEST,
}


@dataclass(frozen=True)
class AttemptResult:
    """What the transport saw, as plain data.

    ``transport_error`` names a failure that left no HTTP answer. The shell uses this
    vocabulary: ``connect``, ``connect_timeout``, ``read_timeout``, ``write_timeout``,
    ``pool_timeout``, ``deadline_timeout`` (no whole answer within the attempt's time: a
    pod that trickles), ``reset``, ``closed``, ``protocol``, ``answer_too_large``;
    unknown names count as unreachable (``timeout`` in the name counts as a timeout).
    ``body_text`` is the text of an error answer; ``body`` and ``content_type`` are
    those of a 2xx answer, checked against the requested format (``answers.py``).
    """

    status: int | None = None
    error_code_header: str | None = None
    body_text: str = ""
    transport_error: str | None = None
    content_type: str = ""
    body: bytes = b""
    load: PodLoad | None = None


@dataclass(frozen=True)
class Outcome:
    """A classified attempt. ``code`` is what the user gets if no retry follows."""

    kind: OutcomeKind
    code: ErrorCode | None = None
    # What the pod reported of its own load with this answer, if anything.
    load: PodLoad | None = None

    @classmethod
    def of(
        cls, kind: OutcomeKind, code: ErrorCode | None = None, load: PodLoad | None = None
    ) -> Outcome:
        """An outcome with the kind's final code filled in (``code`` wins if given)."""
        if kind in (OutcomeKind.OK, OutcomeKind.CANCELLED):
            return cls(kind, None, load)
        return cls(kind, code if code is not None else _FINAL_CODE[kind], load)

    @property
    def transient(self) -> bool:
        """True when another attempt could succeed."""
        return self.kind not in (OutcomeKind.OK, OutcomeKind.PERMANENT, OutcomeKind.CANCELLED)

    @property
    def capacity(self) -> bool:
        """True when the pod refused only for want of room (see the module docstring)."""
        return self.kind in CAPACITY_KINDS


# Refusals that say "not so many at once", not "this pod is broken".
CAPACITY_KINDS = frozenset({OutcomeKind.OOM, OutcomeKind.BUSY})


class PodVerdict(StrEnum):
    """What one attempt says about the pod that ran it."""

    ALIVE = "alive"  # a transcript, or a verdict on the user's input: the pod works
    FAULT = "fault"  # the pod failed the request: another pod may not
    NEUTRAL = "neutral"  # nothing: a cancellation, or a refusal for want of room


def pod_verdict(outcome: Outcome, *, budget_at_floor: bool) -> PodVerdict:
    """The verdict on the pod, given whether its budget was at its floor at grant time.

    A capacity refusal is the router's doing (it asked too much at once) while the budget
    can still shrink; once the pod held no more than its floor, it is the pod's.
    """
    if outcome.kind in (OutcomeKind.OK, OutcomeKind.PERMANENT):
        return PodVerdict.ALIVE
    if outcome.kind in (OutcomeKind.CANCELLED, OutcomeKind.POD_FULL):
        return PodVerdict.NEUTRAL
    if outcome.capacity and not budget_at_floor:
        return PodVerdict.NEUTRAL
    return PodVerdict.FAULT


# Codes our worker (or another asrpool router) may send, and what each means here.
_CODE_KIND: dict[ErrorCode, OutcomeKind] = {
    ErrorCode.GPU_OOM: OutcomeKind.OOM,
    ErrorCode.WORKER_BUSY: OutcomeKind.POD_FULL,
    ErrorCode.MODEL_LOAD_FAILED: OutcomeKind.MODEL_LOAD_FAILED,
    ErrorCode.SERVICE_UNAVAILABLE: OutcomeKind.UNAVAILABLE,
    ErrorCode.QUEUE_FULL: OutcomeKind.BUSY,
    # The worker's own queue timed out: it is busy, another pod may not be.
    ErrorCode.QUEUE_TIMEOUT: OutcomeKind.BUSY,
    ErrorCode.TIMEOUT: OutcomeKind.TIMEOUT,
    # Our upload to the pod stalled: the link's fault, not the user's upload.
    ErrorCode.REQUEST_TIMEOUT: OutcomeKind.TIMEOUT,
    ErrorCode.INTERNAL_ERROR: OutcomeKind.SERVER_ERROR,
    ErrorCode.INVALID_AUDIO: OutcomeKind.PERMANENT,
    ErrorCode.INVALID_REQUEST: OutcomeKind.PERMANENT,
    ErrorCode.FILE_TOO_LARGE: OutcomeKind.PERMANENT,
    # The router checked the key and the model before sending: if the worker still
    # refuses, our configuration is wrong, not the user's request.
    ErrorCode.UNAUTHORIZED: OutcomeKind.SERVER_ERROR,
    ErrorCode.MODEL_NOT_FOUND: OutcomeKind.SERVER_ERROR,
    ErrorCode.NOT_FOUND: OutcomeKind.SERVER_ERROR,
}

_MODEL_LOAD_TEXT = re.compile(
    r"(failed|unable|could not|couldn't) to load (the )?model|model (load|loading) failed"
    r"|error loading model",
    re.IGNORECASE,
)
_BAD_AUDIO_TEXT = re.compile(
    r"invalid audio|(could not|failed to|unable to) decode|not (a )?valid audio"
    r"|unsupported (audio|file|media|format)",
    re.IGNORECASE,
)


def classify(result: AttemptResult, response_format: str | None = None) -> Outcome:
    """The outcome of one attempt, with the load the pod reported (see the module docstring)."""
    outcome = _classify(result, response_format)
    return outcome if result.load is None else replace(outcome, load=result.load)


def _classify(result: AttemptResult, response_format: str | None) -> Outcome:
    """The outcome of one attempt (see the module docstring for the rules).

    With ``response_format`` (what the client asked for), a 2xx answer must be a
    transcription in that format; without it, any 2xx is taken as one.
    """
    if result.transport_error is not None:
        return Outcome.of(_transport_kind(result.transport_error))
    status = result.status
    if status is None:
        # No answer and no named failure: treat as the pod having gone away.
        return Outcome.of(OutcomeKind.UNREACHABLE)
    if 200 <= status < 300:
        if response_format is not None and answer_problem(
            response_format, result.content_type, result.body
        ):
            return Outcome.of(OutcomeKind.BAD_ANSWER)
        return Outcome.of(OutcomeKind.OK)

    code = _code_from_header(result.error_code_header) or _code_from_body(result.body_text)
    if code is not None and code is not ErrorCode.INTERNAL_ERROR:
        kind = _CODE_KIND.get(code) or _kind_of_new_code(code)
        return Outcome.of(kind, code if kind is OutcomeKind.PERMANENT else None)

    text = result.body_text
    if mentions_out_of_memory(text):  # the engines' words for it: asrpool_contract.wire.OOM_MARKERS
        return Outcome.of(OutcomeKind.OOM)
    if _MODEL_LOAD_TEXT.search(text):
        return Outcome.of(OutcomeKind.MODEL_LOAD_FAILED)
    if code is ErrorCode.INTERNAL_ERROR:
        return Outcome.of(OutcomeKind.SERVER_ERROR)
    return _from_status(status, text)


def _kind_of_new_code(code: ErrorCode) -> OutcomeKind:
    # A code added to the wire contract after this table was written: trust its catalogue.
    return OutcomeKind.SERVER_ERROR if ERRORS[code].transient else OutcomeKind.PERMANENT


def _transport_kind(name: str) -> OutcomeKind:
    name = name.lower()
    if name == "answer_too_large":
        return OutcomeKind.BAD_ANSWER
    if name.startswith("connect"):
        # Nothing reached the worker, even on a connect timeout: the pod is unreachable.
        return OutcomeKind.UNREACHABLE
    if "timeout" in name:
        return OutcomeKind.TIMEOUT
    return OutcomeKind.UNREACHABLE


def _code_from_header(value: str | None) -> ErrorCode | None:
    if not value:
        return None
    try:
        return ErrorCode(value.strip().lower())
    except ValueError:
        return None


def _code_from_body(text: str) -> ErrorCode | None:
    # Only OpenAI-shaped bodies carry a code; anything else is matched as text.
    if not text.lstrip().startswith("{"):
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    code, _message = parse_error(body)
    return code


def _from_status(status: int, text: str) -> Outcome:
    if status == 413:
        return Outcome.of(OutcomeKind.PERMANENT, ErrorCode.FILE_TOO_LARGE)
    if status == 415:
        return Outcome.of(OutcomeKind.PERMANENT, ErrorCode.INVALID_AUDIO)
    if status in (408, 504):
        return Outcome.of(OutcomeKind.TIMEOUT)
    if status == 429:
        return Outcome.of(OutcomeKind.BUSY)
    if status == 503:
        return Outcome.of(OutcomeKind.UNAVAILABLE)
    if status == 502:
        # A proxy in front of the worker could not reach it.
        return Outcome.of(OutcomeKind.UNREACHABLE)
    if status in (401, 403, 404) or status >= 500:
        return Outcome.of(OutcomeKind.SERVER_ERROR)
    if 400 <= status < 500:
        if _BAD_AUDIO_TEXT.search(text):
            return Outcome.of(OutcomeKind.PERMANENT, ErrorCode.INVALID_AUDIO)
        return Outcome.of(OutcomeKind.PERMANENT, ErrorCode.INVALID_REQUEST)
    # 1xx/3xx are not answers a worker gives to a transcription: treat as a server fault.
    return Outcome.of(OutcomeKind.SERVER_ERROR)
