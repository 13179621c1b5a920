"""Turn the form fields of an OpenAI audio request into engine options.

Pure: the fields are validated by the shared model (``asrpool_contract.audio_form.read_form``,
which also makes the OpenAPI request body, and which the router reads too); here only what
is the worker's own: the model it serves, and the decode options each field becomes. Every
field OpenAI's SDK sends is either honoured or refused with a sentence saying why; none is
silently ignored (docs/openai.md lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

from asrpool_contract.audio_form import ServerVad, read_form
from asrpool_contract.wire import OPENAI_TRANSCRIPTION_MODELS, AsrpoolError, ErrorCode

from .engine import DecodeOptions, VadSettings


@dataclass(frozen=True)
class AudioRequest:
    options: DecodeOptions
    response_format: str
    stream: bool = False


def parse_request(fields: dict[str, list[str]], *, task: str, served_model: str) -> AudioRequest:
    """Fields as multipart gives them (name → values); ``task`` is transcribe or translate."""
    form = read_form(fields)
    if form.model and form.model != served_model and form.model not in OPENAI_TRANSCRIPTION_MODELS:
        raise AsrpoolError(
            ErrorCode.MODEL_NOT_FOUND,
            f"Model '{form.model}' is not served here; this server serves '{served_model}'.",
            param="model",
        )
    prompt = form.prompt
    if form.keywords:
        # Whisper is steered by its prompt: naming the words there makes it spell them so.
        prompt = " ".join([prompt, ", ".join(form.keywords)]).strip()
    return AudioRequest(
        options=DecodeOptions(
            task=task,
            language=form.language,
            languages=form.languages,
            prompt=prompt or None,
            temperature=form.temperature,
            word_timestamps=form.word_timestamps,
            # A stream sends a delta per segment: without timestamps a clip is one segment.
            timestamps=form.stream or form.response_format in ("srt", "vtt", "verbose_json"),
            draft=form.asrpool_draft,
            live=form.asrpool_live,
            vad=_vad(form.chunking_strategy),
            logprobs=form.logprobs,
            offset_s=form.asrpool_offset,
        ),
        response_format=form.response_format,
        stream=form.stream,
    )


def _vad(strategy: ServerVad | str) -> VadSettings | None:
    """``chunking_strategy``: ``auto`` → our default VAD (None); ``server_vad`` → its knobs."""
    if not isinstance(strategy, ServerVad):
        return None
    return VadSettings(
        threshold=strategy.threshold,
        prefix_padding_ms=strategy.prefix_padding_ms,
        silence_duration_ms=strategy.silence_duration_ms,
    )
