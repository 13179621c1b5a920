"""The OpenAPI document of the router and the worker, generated from the code's own models.

FastAPI documents what it sees: paths, methods, parameters, the API key (an ``HTTPBearer``
security dependency). It cannot see three things, and this module adds them from their
one home each, so the document cannot drift from the code:

- the audio routes' multipart form, which ``asrpool_contract.uploads`` reads by hand (to count bytes
  as they stream): ``audio_route`` reads ``asrpool_contract.audio_form.AudioUpload``, a model
  the worker validates with and the router routes with;
- their answers: the 200 in every ``response_format`` (``asrpool_contract.audio_answers``, the types
  the worker renders) and, for ``stream=true``, as ``text/event-stream`` of the events of
  ``asrpool_contract.transcript_stream``;
- our errors: every one leaves in OpenAI's shape (``wire.ErrorResponse``) with a stable code;
  ``error_responses`` groups the codes a route gives by status (from ``wire.ERRORS``), each
  with its codes, the ``x-asrpool-error-code`` header and, where the catalogue says so,
  ``Retry-After``.

``install_openapi(app)`` builds the document once, on the first ``GET /openapi.json``, and
adds what every route shares: 401 on the routes behind the API key, 400 where FastAPI would
say 422 (``asrpool_contract.http_errors`` answers validation errors with 400), 500 everywhere.
``tests/integration/test_openapi_contract.py`` holds the document to the real servers with
schemathesis.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import Field, TypeAdapter

from . import transcript_stream
from .audio_answers import MEDIA_TYPES, Transcription, TranscriptionVerbose
from .audio_form import AudioUpload
from .wire import ERROR_CODE_HEADER, ERRORS, ErrorCode, ErrorResponse, error_body

_REF = "#/components/schemas/{model}"
STREAM_EVENT = "TranscriptStreamEvent"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def component_schemas() -> dict[str, Any]:
    """Every shared model the document refers to, by name (``components.schemas``)."""
    adapters: list[tuple[str, TypeAdapter[Any]]] = [
        ("ErrorResponse", TypeAdapter(ErrorResponse)),
        ("AudioUpload", TypeAdapter(AudioUpload)),
        ("Transcription", TypeAdapter(Transcription)),
        ("TranscriptionVerbose", TypeAdapter(TranscriptionVerbose)),
        (
            STREAM_EVENT,
            TypeAdapter(Annotated[transcript_stream.StreamEvent, Field(discriminator="type")]),
        ),
    ]
    tops, defs = TypeAdapter.json_schemas(
        [(name, "validation", adapter) for name, adapter in adapters], ref_template=_REF
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    for (name, _mode), schema in tops.items():
        if "$ref" not in schema:  # the event union has no name of its own
            schemas[name] = {
                "description": "One `data:` line of the stream: a JSON event.",
                **schema,
            }
    return schemas


# --- errors ------------------------------------------------------------------------------


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` for these codes: one entry a status, naming its codes."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(ERRORS[code].status, []).append(code)
    return {status: error_response(group) for status, group in sorted(by_status.items())}


def error_response(codes: Iterable[ErrorCode]) -> dict[str, Any]:
    """One error status: OpenAI's shape, narrowed to these codes, and its headers."""
    group = sorted(set(codes))
    names = [c.value for c in group]
    headers: dict[str, Any] = {
        ERROR_CODE_HEADER: {
            "description": "The error's code, as in the body.",
            "required": True,
            "schema": {"type": "string", "enum": names},
        }
    }
    if any(ERRORS[c].retry_after for c in group):
        headers["Retry-After"] = {
            "description": "Whole seconds to wait before sending the request again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    narrowed = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"enum": names},
                    "type": {"enum": sorted({ERRORS[c].type for c in group})},
                },
            }
        },
    }
    return {
        "description": "; ".join(f"`{c.value}`: {ERRORS[c].en}" for c in group),
        "headers": headers,
        "content": {
            "application/json": {
                "schema": {"allOf": [_ref("ErrorResponse"), narrowed]},
                "examples": {c.value: {"value": error_body(c)} for c in group},
            }
        },
    }


def _codes_of(response: dict[str, Any]) -> list[ErrorCode]:
    header = response.get("headers", {}).get(ERROR_CODE_HEADER, {})
    return [ErrorCode(name) for name in header.get("schema", {}).get("enum", [])]


def _add_errors(responses: dict[str, Any], *codes: ErrorCode) -> None:
    for status, added in error_responses(*codes).items():
        key = str(status)
        if key in responses:
            responses[key] = error_response([*_codes_of(responses[key]), *_codes_of(added)])
        else:
            responses[key] = added


# --- routes ------------------------------------------------------------------------------


def text_route(media_type: str, description: str) -> dict[str, Any]:
    """Route keywords for a text answer (``/metrics``: Prometheus text, not JSON)."""
    return {
        "responses": {
            200: {
                "description": description,
                "content": {media_type: {"schema": {"type": "string"}}},
            }
        },
    }


def audio_route(
    *, summary: str, errors: Iterable[ErrorCode], max_upload_bytes: int
) -> dict[str, Any]:
    """Route keywords for ``POST /v1/audio/transcriptions`` or ``/translations``."""
    answers = {
        "application/json": {
            "schema": {"anyOf": [_ref("Transcription"), _ref("TranscriptionVerbose")]}
        },
        **{
            MEDIA_TYPES[fmt].split(";")[0]: {"schema": {"type": "string"}}
            for fmt in ("text", "srt", "vtt")
        },
        transcript_stream.MEDIA_TYPE: {"schema": _ref(STREAM_EVENT)},
    }
    return {
        "summary": summary,
        "description": (
            "OpenAI's audio API (docs/openai.md lists every field and what asrpool does with "
            f"it). The upload may be at most {max_upload_bytes / 2**20:g} MB here. The answer "
            "is the transcript in `response_format`: `json` and `verbose_json` as JSON, "
            "`text` as plain text, `srt` and `vtt` as subtitles; with `stream=true` server-sent "
            "events instead."
        ),
        "responses": {
            200: {"description": "The transcript.", "content": answers},
            **error_responses(*errors),
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": {"schema": _ref("AudioUpload")}},
            }
        },
    }


# --- the document ------------------------------------------------------------------------


def install_openapi(app: FastAPI, *, description: str) -> None:
    """Serve the whole document at ``/openapi.json`` (FastAPI's route calls ``app.openapi``)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, description)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _document(app: FastAPI, description: str) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=version("asrpool"), description=description, routes=app.routes
    )
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None:
                _add_errors(responses, ErrorCode.INVALID_REQUEST)
            if operation.get("security"):
                _add_errors(responses, ErrorCode.UNAUTHORIZED)
            _add_errors(responses, ErrorCode.INTERNAL_ERROR)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(component_schemas())
    return doc
