"""Server events checked against the ``openai`` SDK's own pydantic types.

``ga(event)`` validates with ``TypeAdapter(openai.types.realtime.RealtimeServerEvent)``,
``beta(event)`` with the beta union. The SDK's models accept unknown fields, so a field
whose name drifted would pass unnoticed; each check therefore also walks the validated
model and fails on any extra field not in the allow-list below (asrpool's documented
additions, and the ``id``/``object`` OpenAI's own server puts on session objects).

Two gaps of the SDK's beta types, each worked around narrowly and said here:
- the beta union has no ``transcription_session.created`` (OpenAI's beta server sends it
  first on a transcription socket, the SDK never listed it): its ``session`` is checked as
  the union's ``transcription_session.updated`` session;
- the beta ``TranscriptionSession`` was generated from the REST call that mints ephemeral
  keys and requires ``client_secret``, which a WebSocket session has none of (OpenAI's
  server sent none there either): it is made optional, every other field stays the SDK's.
"""

from __future__ import annotations

from typing import Any

import pydantic
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.beta.realtime.transcription_session import ClientSecret, TranscriptionSession
from openai.types.realtime import RealtimeServerEvent

_GA = pydantic.TypeAdapter(RealtimeServerEvent)
_BETA = pydantic.TypeAdapter(BetaServerEvent)
_BetaWsSession = pydantic.create_model(
    "BetaWsSession",
    __base__=TranscriptionSession,
    client_secret=(ClientSecret | None, None),
)

# (model class name, extra field): where asrpool adds to OpenAI's shapes, on purpose.
ALLOWED_EXTRAS = {
    # the whole current hypothesis of a partial (delta only appends)
    ("ConversationItemInputAudioTranscriptionDeltaEvent", "partial_transcript"),
    # where the audio that partial read ends (how far behind the speaker it is)
    ("ConversationItemInputAudioTranscriptionDeltaEvent", "audio_end_ms"),
    # GA session objects: OpenAI's server adds these to the request type the SDK names
    ("RealtimeTranscriptionSessionCreateRequest", "id"),
    ("RealtimeTranscriptionSessionCreateRequest", "object"),
    # the longest piece before a cut at the quietest frame
    ("ServerVad", "max_chunk_ms"),
    ("SemanticVad", "max_chunk_ms"),
    # beta session object: OpenAI's beta server sent id, object, include and noise reduction;
    # input_audio_sample_rate is asrpool's (16 kHz PCM16)
    ("BetaWsSession", "id"),
    ("BetaWsSession", "object"),
    ("BetaWsSession", "include"),
    ("BetaWsSession", "input_audio_noise_reduction"),
    ("BetaWsSession", "input_audio_sample_rate"),
    ("TurnDetection", "max_chunk_ms"),
    ("TurnDetection", "eagerness"),
    ("TurnDetection", "create_response"),
    ("TurnDetection", "interrupt_response"),
}


def ga(event: dict[str, Any]) -> pydantic.BaseModel:
    model = _GA.validate_python(event)
    _no_stray_fields(model)
    return model


def beta(event: dict[str, Any]) -> pydantic.BaseModel:
    if event.get("type") == "transcription_session.created":
        as_updated = {**event, "type": "transcription_session.updated"}
        as_updated["session"] = _BetaWsSession.model_validate(event["session"])
        model = _BETA.validate_python(as_updated)
    elif event.get("type") == "transcription_session.updated":
        model = _BETA.validate_python(
            {**event, "session": _BetaWsSession.model_validate(event["session"])}
        )
    else:
        model = _BETA.validate_python(event)
    _no_stray_fields(model)
    return model


def _no_stray_fields(model: pydantic.BaseModel) -> None:
    stray = sorted(
        f"{name}.{key}" for name, key in _extras(model) if (name, key) not in ALLOWED_EXTRAS
    )
    assert not stray, f"fields the SDK's types do not have: {stray}"


def _extras(value: object) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    if isinstance(value, pydantic.BaseModel):
        found |= {(type(value).__name__, key) for key in value.model_extra or {}}
        for name in type(value).model_fields:
            found |= _extras(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            found |= _extras(item)
    return found
