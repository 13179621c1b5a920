"""A live session's settings, and how a session update changes them, field by field.

Two dialects carry the same settings (``Dialect``):

- GA ``session.update``: ``session.type = "transcription"``, ``session.include`` and
  ``session.audio.input.{format, noise_reduction, transcription, turn_detection}``;
- beta ``transcription_session.update``: ``input_audio_format``, ``input_audio_transcription``,
  ``turn_detection``, ``input_audio_noise_reduction``, ``include``, ``modalities``, and
  asrpool's ``input_audio_sample_rate`` (16 kHz PCM16 saves a third of the bandwidth; the
  GA format object can only say 24 kHz).

``apply_update`` applies every field it can and returns one ``ProtocolError`` for each field
it cannot honour, naming it in ``param``: that field keeps its old value and the rest of the
update stands (OpenAI's behaviour), so one unsupported value never leaves a session on
defaults. A field we do not know is refused the same way, never silently ignored. Fields an
update does not mention keep their values.

Pure. ``realtime_protocol`` renders the settings back as each dialect's session object;
docs/realtime.md has the table of every field and what asrpool does with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeGuard, TypeVar

from .chunking import ChunkingPolicy
from .pcm import ACCEPTED_RATES, AudioFormat
from .realtime_errors import ProtocolError

_V = TypeVar("_V")


class Dialect(StrEnum):
    """Which of OpenAI's realtime shapes a session speaks."""

    GA = "ga"
    BETA = "beta"


class TurnKind(StrEnum):
    SERVER_VAD = "server_vad"
    SEMANTIC_VAD = "semantic_vad"


# semantic_vad on an energy VAD: it cannot hear whether a sentence is finished, so each
# eagerness gets one fixed pause, a quarter of OpenAI's longest wait for it (8, 4, 2 s):
# low waits longest (fewer, longer items), high cuts soonest, auto is medium.
EAGERNESS_SILENCE_MS = {"low": 2_000, "medium": 1_000, "auto": 1_000, "high": 500}

# noise_reduction: the VAD stops counting the band below this (times ``strength``). Close
# microphones pick up mains hum and handling thumps under 100 Hz; room microphones also
# air conditioning and traffic rumble up to about 200 Hz. Voices keep nearly all their
# energy above these (the fundamental's harmonics carry it).
NOISE_LOW_CUT_HZ = {"near_field": 100.0, "far_field": 200.0}

LOGPROBS = "item.input_audio_transcription.logprobs"
BETA_FORMATS = {
    "pcm16": AudioFormat.PCM16,
    "g711_ulaw": AudioFormat.PCMU,
    "g711_alaw": AudioFormat.PCMA,
}
# Whisper reads 30 s at once; a longer piece would only delay its final.
MAX_CHUNK_MS = 30_000
# The quiet stretch an idle timeout commits is held in memory until then.
IDLE_TIMEOUT_RANGE_MS = (1_000, 30_000)
MAX_PREFIX_PADDING_MS = 5_000


@dataclass(frozen=True)
class NoiseReduction:
    kind: str  # near_field | far_field
    strength: float = 1.0

    @property
    def low_cut_hz(self) -> float:
        return NOISE_LOW_CUT_HZ[self.kind] * self.strength


@dataclass(frozen=True)
class SessionConfig:
    """The settings in force, whatever dialect set them."""

    model: str | None = None  # the pool; None → the default pool
    language: str | None = None
    prompt: str | None = None
    keywords: tuple[str, ...] = ()  # GA: words to expect, added to Whisper's prompt
    audio_format: AudioFormat = AudioFormat.PCM16
    sample_rate: int = 24_000  # PCM16's rate (what OpenAI clients send); G.711 is 8 kHz
    chunking: ChunkingPolicy = field(default_factory=ChunkingPolicy)
    # True once the client chose turn detection itself; until then the pool's settings apply.
    chunking_chosen: bool = False
    turn_kind: TurnKind = TurnKind.SERVER_VAD
    eagerness: str | None = None  # semantic_vad only
    # create_response / interrupt_response as the client set them: a transcription session
    # creates no responses, so they change nothing, but the session shows what was asked.
    response_flags: tuple[tuple[str, bool], ...] = ()
    noise_reduction: NoiseReduction | None = None
    include_logprobs: bool = False

    @property
    def input_rate(self) -> int:
        return self.audio_format.fixed_rate or self.sample_rate

    def effective_chunking(self) -> ChunkingPolicy:
        """The chunker's policy: turn detection, with noise reduction's cut in the VAD."""
        low_cut = self.noise_reduction.low_cut_hz if self.noise_reduction else 0.0
        vad = replace(self.chunking.vad, low_cut_hz=low_cut)
        return replace(self.chunking, vad=vad)

    def whisper_prompt(self) -> str | None:
        """The session's own prompt and keywords (Whisper reads a prompt as vocabulary)."""
        parts = [self.prompt or "", ", ".join(self.keywords)]
        return " ".join(p for p in parts if p) or None


# Returns why a model cannot be used (the pool registry's message), or None.
ModelCheck = Callable[[str], str | None]


@dataclass(frozen=True)
class Applied:
    config: SessionConfig
    errors: list[ProtocolError]


def apply_update(
    config: SessionConfig, session: Mapping[str, Any], dialect: Dialect, check_model: ModelCheck
) -> Applied:
    """The settings after a session update of ``dialect``, and an error per refused field."""
    update = _Update(config, [], check_model, dialect)
    if dialect is Dialect.GA:
        _apply_ga(update, session)
    else:
        _apply_beta(update, session)
    return Applied(update.config, update.errors)


# --- the two shapes ------------------------------------------------------------------


GA_SESSION_KEYS = {"type", "audio", "include"}
GA_INPUT_KEYS = {"format", "noise_reduction", "transcription", "turn_detection"}
GA_TRANSCRIPTION_KEYS = {"model", "language", "prompt", "keywords", "languages", "delay"}
BETA_SESSION_KEYS = {
    "input_audio_format",
    "input_audio_sample_rate",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "include",
    "modalities",
    "client_secret",
}
BETA_TRANSCRIPTION_KEYS = {"model", "language", "prompt"}


def _apply_ga(u: _Update, session: Mapping[str, Any]) -> None:
    u.unknown(session, GA_SESSION_KEYS, "session", hint=_GA_HINT)
    if "type" in session and session["type"] != "transcription":
        u.refuse(
            "invalid_value",
            "session.type",
            "This endpoint serves transcription sessions (intent=transcription): "
            "session.type must be 'transcription'.",
        )
    if "include" in session:
        _include(u, session["include"], "session.include")
    audio = u.object(session, "audio", "session.audio")
    if audio is None:
        return
    u.unknown(
        audio,
        {"input"},
        "session.audio",
        hint="A transcription session has audio input only.",
    )
    audio_in = u.object(audio, "input", "session.audio.input")
    if audio_in is None:
        return
    prefix = "session.audio.input"
    u.unknown(audio_in, GA_INPUT_KEYS, prefix)
    if "format" in audio_in:
        _ga_format(u, audio_in["format"], f"{prefix}.format")
    if "noise_reduction" in audio_in:
        _noise_reduction(u, audio_in["noise_reduction"], f"{prefix}.noise_reduction", strength=True)
    if "transcription" in audio_in:
        _transcription(
            u, audio_in["transcription"], f"{prefix}.transcription", GA_TRANSCRIPTION_KEYS
        )
    if "turn_detection" in audio_in:
        _turn_detection(u, audio_in["turn_detection"], f"{prefix}.turn_detection")


_GA_HINT = (
    "session.update takes the GA shape (session.type, session.audio.input.*, "
    "session.include); the beta names belong in transcription_session.update."
)
_BETA_HINT = (
    "transcription_session.update takes the beta shape (input_audio_format, "
    "input_audio_transcription, turn_detection, …); the GA shape belongs in session.update."
)


def _apply_beta(u: _Update, session: Mapping[str, Any]) -> None:
    u.unknown(session, BETA_SESSION_KEYS, "session", hint=_BETA_HINT)
    if "client_secret" in session:
        u.refuse(
            "unsupported_parameter",
            "session.client_secret",
            "asrpool mints no ephemeral keys: connect with an API key "
            "(Authorization header, or the openai-insecure-api-key subprotocol).",
        )
    if "modalities" in session:
        modalities = session["modalities"]
        if not _is_list_of_str(modalities) or not set(modalities) <= {"text"}:
            u.refuse(
                "unsupported_parameter",
                "session.modalities",
                "A transcription session answers in text only: modalities must be ['text'].",
            )
    if "input_audio_format" in session:
        fmt = _lookup(BETA_FORMATS, session["input_audio_format"])
        if fmt is None:
            u.refuse(
                "unsupported_audio_format",
                "session.input_audio_format",
                f"input_audio_format {session['input_audio_format']!r} is not supported; "
                f"send one of {', '.join(BETA_FORMATS)}.",
            )
        else:
            u.config = replace(u.config, audio_format=fmt)
    if "input_audio_sample_rate" in session:
        _beta_rate(u, session["input_audio_sample_rate"])
    if "include" in session:
        _include(u, session["include"], "session.include")
    if "input_audio_noise_reduction" in session:
        _noise_reduction(
            u, session["input_audio_noise_reduction"], "session.input_audio_noise_reduction"
        )
    if "input_audio_transcription" in session:
        _transcription(
            u,
            session["input_audio_transcription"],
            "session.input_audio_transcription",
            BETA_TRANSCRIPTION_KEYS,
        )
    if "turn_detection" in session:
        _turn_detection(u, session["turn_detection"], "session.turn_detection")


# --- one field each ------------------------------------------------------------------


def _ga_format(u: _Update, value: object, param: str) -> None:
    if not isinstance(value, dict):
        u.refuse("invalid_type", param, f"'{param}' must be an object such as "
                 '{"type": "audio/pcm", "rate": 24000}.')  # fmt: skip
        return
    kind = value.get("type", AudioFormat.PCM16.value)
    try:
        fmt = AudioFormat(kind)
    except ValueError:
        u.refuse(
            "unsupported_audio_format",
            f"{param}.type",
            f"Audio format {kind!r} is not supported; send audio/pcm (24 kHz PCM16), "
            "audio/pcmu or audio/pcma (G.711 at 8 kHz).",
        )
        return
    u.unknown(value, {"type", "rate"} if fmt is AudioFormat.PCM16 else {"type"}, param)
    # G.711 leaves the PCM16 rate as it was: it only counts while the format is PCM16.
    rate = value.get("rate", 24_000) if fmt is AudioFormat.PCM16 else u.config.sample_rate
    if fmt is AudioFormat.PCM16 and (not _is_number(rate) or rate != 24_000):
        u.refuse(
            "invalid_sample_rate",
            f"{param}.rate",
            f"audio/pcm is 24000 Hz in GA sessions (OpenAI's only rate); got {rate!r}. "
            "asrpool also takes 16 kHz PCM16, through the beta input_audio_sample_rate.",
        )
        return
    u.config = replace(
        u.config, audio_format=fmt, sample_rate=u.config.sample_rate if fmt.fixed_rate else 24_000
    )


def _beta_rate(u: _Update, rate: object) -> None:
    param = "session.input_audio_sample_rate"
    fixed = u.config.audio_format.fixed_rate
    if fixed is not None:
        if rate != fixed:
            u.refuse("invalid_sample_rate", param, f"G.711 audio is {fixed} Hz; got {rate!r}.")
        return
    if not _is_number(rate) or rate not in ACCEPTED_RATES:
        u.refuse(
            "invalid_sample_rate",
            param,
            f"Sample rate {rate!r} is not supported; send PCM16 mono at 24000 or 16000 Hz.",
        )
        return
    u.config = replace(u.config, sample_rate=int(rate))


def _include(u: _Update, value: object, param: str) -> None:
    if value is None:
        value = []
    if not _is_list_of_str(value) or not set(value) <= {LOGPROBS}:
        u.refuse("invalid_value", param, f"include takes only {LOGPROBS!r}.")
        return
    u.config = replace(u.config, include_logprobs=LOGPROBS in value)


def _noise_reduction(u: _Update, value: object, param: str, *, strength: bool = False) -> None:
    if value is None:
        u.config = replace(u.config, noise_reduction=None)
        return
    if not isinstance(value, dict):
        u.refuse("invalid_type", param, f"'{param}' must be null or an object.")
        return
    u.unknown(value, {"type", "strength"} if strength else {"type"}, param)
    current = u.config.noise_reduction
    kind = value.get("type", current.kind if current else "near_field")
    if _lookup(NOISE_LOW_CUT_HZ, kind) is None:
        u.refuse(
            "invalid_value", f"{param}.type", "noise_reduction.type is near_field or far_field."
        )
        return
    level = current.strength if current else 1.0
    if strength and "strength" in value:
        raw = value["strength"]
        if not _is_number(raw) or not 0.0 <= raw <= 1.0:
            u.refuse("invalid_value", f"{param}.strength", "strength is a number from 0 to 1.")
        else:
            level = float(raw)
    u.config = replace(u.config, noise_reduction=NoiseReduction(kind, level))


def _transcription(u: _Update, value: object, param: str, keys: set[str]) -> None:
    if not isinstance(value, dict):
        u.refuse(
            "invalid_type",
            param,
            f"'{param}' must be an object: a transcription session always transcribes.",
        )
        return
    u.unknown(value, keys, param)
    if "model" in value:
        model = value["model"]
        if model is not None and not isinstance(model, str):
            u.refuse("invalid_type", f"{param}.model", "model must be a string.")
        else:
            problem = u.check_model(model) if model else None
            if problem:
                u.refuse("model_not_found", f"{param}.model", problem)
            else:
                u.config = replace(u.config, model=model or None)
    if "language" in value:
        _language(u, value["language"], f"{param}.language")
    if "languages" in value:
        languages = value["languages"]
        if languages is None or languages == []:
            pass  # no hint: the language is detected, as without the field
        elif not _is_list_of_str(languages):
            u.refuse(
                "invalid_type", f"{param}.languages", "languages is a list of ISO-639-1 codes."
            )
        elif len(languages) > 1:
            u.refuse(
                "unsupported_parameter",
                f"{param}.languages",
                "Whisper takes one language, or detects it: give one code in languages "
                "(or language), or leave both out.",
            )
        else:
            _language(u, languages[0], f"{param}.languages")
    if "prompt" in value:
        prompt = value["prompt"]
        if prompt is not None and not isinstance(prompt, str):
            u.refuse("invalid_type", f"{param}.prompt", "prompt must be a string.")
        else:
            u.config = replace(u.config, prompt=prompt or None)
    if "keywords" in value:
        keywords = value["keywords"] or []
        if not _is_list_of_str(keywords):
            u.refuse("invalid_type", f"{param}.keywords", "keywords is a list of strings.")
        else:
            u.config = replace(u.config, keywords=tuple(k.strip() for k in keywords if k.strip()))
    if "delay" in value:
        u.refuse(
            "unsupported_parameter",
            f"{param}.delay",
            "delay is not supported: asrpool sends a partial about every 0.7 s of new audio "
            "and the final when the utterance ends.",
        )


def _language(u: _Update, value: object, param: str) -> None:
    if value is None or value == "":
        u.config = replace(u.config, language=None)
        return
    if not isinstance(value, str) or not (2 <= len(value.strip()) <= 3 and value.isalpha()):
        u.refuse("invalid_value", param, "language must be an ISO-639-1 code such as 'en' or 'zh'.")
        return
    u.config = replace(u.config, language=value.strip().lower())


_SERVER_VAD_KEYS = {
    "type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "idle_timeout_ms",
    "create_response",
    "interrupt_response",
    "max_chunk_ms",  # asrpool's: the longest piece before a cut at the quietest frame
}
_SEMANTIC_VAD_KEYS = {"type", "eagerness", "create_response", "interrupt_response", "max_chunk_ms"}


def _turn_detection(u: _Update, value: object, param: str) -> None:
    if value is None:
        chunking = replace(u.config.chunking, server_vad=False, idle_timeout_ms=None)
        u.config = replace(u.config, chunking=chunking, chunking_chosen=True)
        return
    if not isinstance(value, dict):
        u.refuse("invalid_turn_detection", param, f"'{param}' must be null or an object.")
        return
    try:
        kind = TurnKind(value.get("type", TurnKind.SERVER_VAD.value))
    except ValueError:
        u.refuse(
            "invalid_turn_detection",
            f"{param}.type",
            'turn_detection.type is "server_vad" or "semantic_vad" (or turn_detection null '
            "to commit by hand).",
        )
        return
    keys = set(_SERVER_VAD_KEYS if kind is TurnKind.SERVER_VAD else _SEMANTIC_VAD_KEYS)
    if u.dialect is Dialect.BETA:
        keys.discard("idle_timeout_ms")  # the beta protocol has no timeout_triggered event
    u.unknown(value, keys, param)
    was = u.config
    policy = replace(was.chunking, server_vad=True)
    eagerness = None
    if kind is TurnKind.SEMANTIC_VAD:
        eagerness = value.get("eagerness", was.eagerness or "auto")
        if _lookup(EAGERNESS_SILENCE_MS, eagerness) is None:
            u.refuse(
                "invalid_turn_detection",
                f"{param}.eagerness",
                "eagerness is low, medium, high or auto.",
            )
            eagerness = was.eagerness or "auto"
        policy = replace(
            policy, silence_duration_ms=EAGERNESS_SILENCE_MS[eagerness], idle_timeout_ms=None
        )
    elif was.turn_kind is TurnKind.SEMANTIC_VAD or not was.chunking.server_vad:
        # Leaving semantic VAD or manual commits: its pause was eagerness's, not the client's.
        policy = replace(policy, silence_duration_ms=ChunkingPolicy().silence_duration_ms)

    def knob(name: str, check: Callable[[Any], ChunkingPolicy], rule: str) -> None:
        nonlocal policy
        if name not in value:
            return
        try:
            policy = check(value[name])
        except (TypeError, ValueError):
            u.refuse(
                "invalid_turn_detection", f"{param}.{name}", f"{name} {rule}; got {value[name]!r}."
            )

    if kind is TurnKind.SERVER_VAD:
        knob(
            "threshold",
            lambda v: replace(policy, vad=replace(policy.vad, threshold=_number(v, 0.0, 1.0))),
            "is a number from 0 to 1",
        )
        knob(
            "prefix_padding_ms",
            lambda v: replace(policy, prefix_padding_ms=_int(v, 0, MAX_PREFIX_PADDING_MS)),
            f"is whole milliseconds from 0 to {MAX_PREFIX_PADDING_MS}",
        )
        knob(
            "silence_duration_ms",
            lambda v: replace(policy, silence_duration_ms=_int(v, policy.vad.frame_ms, 10_000)),
            f"is whole milliseconds from {policy.vad.frame_ms} to 10000",
        )
        knob(
            "idle_timeout_ms",
            lambda v: replace(
                policy, idle_timeout_ms=None if v is None else _int(v, *IDLE_TIMEOUT_RANGE_MS)
            ),
            f"is null or whole milliseconds from {IDLE_TIMEOUT_RANGE_MS[0]} to "
            f"{IDLE_TIMEOUT_RANGE_MS[1]}",
        )
    knob(
        "max_chunk_ms",
        lambda v: replace(policy, max_utterance_ms=_int(v, policy.min_chunk_ms + 1, MAX_CHUNK_MS)),
        f"is whole milliseconds from {policy.min_chunk_ms + 1} to {MAX_CHUNK_MS}",
    )
    flags = dict(was.response_flags)
    for name in ("create_response", "interrupt_response"):
        if name in value:
            if isinstance(value[name], bool):
                flags[name] = value[name]
            else:
                u.refuse("invalid_turn_detection", f"{param}.{name}", f"{name} is true or false.")
    u.config = replace(
        was,
        chunking=policy,
        chunking_chosen=True,
        turn_kind=kind,
        eagerness=eagerness,
        response_flags=tuple(sorted(flags.items())),
    )


# --- plumbing --------------------------------------------------------------------------


@dataclass
class _Update:
    config: SessionConfig
    errors: list[ProtocolError]
    check_model: ModelCheck
    dialect: Dialect

    def refuse(self, code: str, param: str, message: str) -> None:
        self.errors.append(ProtocolError(code, message, param=param))

    def unknown(
        self, value: Mapping[str, Any], known: Iterable[str], prefix: str, hint: str = ""
    ) -> None:
        for key in value:
            if key not in known:
                message = f"Unknown parameter: '{prefix}.{key}'."
                self.refuse("unknown_parameter", f"{prefix}.{key}", f"{message} {hint}".strip())

    def object(self, parent: Mapping[str, Any], key: str, param: str) -> Mapping[str, Any] | None:
        """``parent[key]`` when it is an object; refused (and None) when it is not."""
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, dict):
            self.refuse("invalid_type", param, f"'{param}' must be an object.")
            return None
        return value


def _lookup(table: Mapping[str, _V], key: object) -> _V | None:
    """``table[key]`` for a string key we know; None for anything else JSON can hold."""
    return table.get(key) if isinstance(key, str) else None


def _is_list_of_str(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: object, lo: float, hi: float) -> float:
    if not _is_number(value) or not lo <= value <= hi:
        raise ValueError(value)
    return float(value)


def _int(value: object, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (JSON may spell 500 as 500.0)."""
    if not _is_number(value) or value != int(value) or not lo <= value <= hi:
        raise ValueError(value)
    return int(value)
