"""Cut a live audio stream into utterances at silences, and say when a partial is due.

The realtime session feeds 16 kHz PCM16 samples as they arrive; the ``Chunker``
answers with events: an utterance started, a partial transcription of the growing
utterance is due, the utterance ended (committed: transcribe it for good). Cuts
fall in silence, never mid-word: at the end of a pause (server VAD), or, when an
utterance outgrows the maximum window, at the quietest frame near its end. With
turn detection off the client commits by hand and everything it sent is one item.
With ``idle_timeout_ms`` (server VAD only), a stretch of that much audio without speech
is committed as an item of its own after a ``TimeoutTriggered`` (OpenAI's
``input_audio_buffer.timeout_triggered``): a speaker too quiet for the VAD is still
transcribed, and the client learns the line went silent.

What the seed did instead: cut every 3 s or 50 KB, wherever that fell, so words
at the borders were split and misheard.

Pure: numpy in, events out; no clocks (positions are sample counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asrpool_contract.pool_spec import Realtime

from .pcm import WHISPER_RATE, ms_to_samples, samples_to_ms
from .vad import EnergyVad, VadPolicy

_REALTIME = Realtime()  # a pool's spec.realtime: its defaults are these


@dataclass(frozen=True)
class ChunkingPolicy:
    """Turn detection and chunking knobs (OpenAI's names where it has them)."""

    server_vad: bool = True  # False: turn detection off, the client commits
    silence_duration_ms: int = _REALTIME.silence_duration_ms  # a pause this long ends it
    prefix_padding_ms: int = 300  # audio kept before the detected start of speech
    min_speech_ms: int = 120  # shorter bursts are clicks, not words
    # The maximum window: cut (at the quietest frame) past it.
    max_utterance_ms: int = _REALTIME.max_chunk_ms
    min_chunk_ms: int = 1_000  # a forced cut never leaves a piece shorter than this
    cut_search_ms: int = 2_000  # a forced cut looks this far back for the quietest frame
    first_partial_ms: int = 500  # first partial after this much of an utterance
    partial_interval_ms: int = _REALTIME.partial_interval_ms  # then one per this much audio
    # Server VAD: this much audio without speech is committed as its own item; None: never.
    idle_timeout_ms: int | None = None
    vad: VadPolicy = field(default_factory=VadPolicy)

    def __post_init__(self) -> None:
        if self.silence_duration_ms < self.vad.frame_ms:
            raise ValueError("silence_duration_ms must be at least one frame")
        if not 0 < self.min_chunk_ms < self.max_utterance_ms:
            raise ValueError("need 0 < min_chunk_ms < max_utterance_ms")
        if self.partial_interval_ms <= 0 or self.first_partial_ms <= 0:
            raise ValueError("partial cadence must be positive")
        if self.idle_timeout_ms is not None and self.idle_timeout_ms < self.vad.frame_ms:
            raise ValueError("idle_timeout_ms must be at least one frame")


@dataclass(frozen=True)
class SpeechStarted:
    item: int
    start: int  # absolute sample index where the item's audio begins


@dataclass(frozen=True)
class SpeechStopped:
    item: int
    end: int  # absolute sample index where speech stopped


@dataclass(frozen=True)
class PartialDue:
    """Transcribe the item so far; the text may still change."""

    item: int
    start: int
    audio: np.ndarray


@dataclass(frozen=True)
class Committed:
    """The item is final: transcribe ``audio`` (samples ``start``…``start+len``) for good."""

    item: int
    start: int
    audio: np.ndarray


@dataclass(frozen=True)
class TimeoutTriggered:
    """``idle_timeout_ms`` of audio passed without speech (samples ``start``…``end``);
    a ``Committed`` of that audio follows."""

    item: int
    start: int
    end: int


Event = SpeechStarted | SpeechStopped | PartialDue | Committed | TimeoutTriggered


class Chunker:
    def __init__(self, policy: ChunkingPolicy, *, first_item: int = 1, position: int = 0) -> None:
        """``first_item`` and ``position`` continue a session's numbering and audio clock
        when its settings change and a new chunker takes over."""
        self.policy = policy
        self._vad = EnergyVad(policy.vad)
        self._frame = ms_to_samples(policy.vad.frame_ms)
        self._pending = np.zeros(0, dtype=np.int16)  # samples not yet a whole frame
        self._position = position  # absolute index of the next frame's first sample
        self._next_item = first_item
        # The open item: its start, its frames, and each frame's loudness (for cuts).
        self._item: int | None = None
        self._item_start = 0
        self._frames: list[np.ndarray] = []
        self._levels: list[float] = []
        self._last_partial_len = 0
        # Before speech: recent frames kept as prefix padding, and the run of speech frames.
        self._preroll: list[tuple[int, np.ndarray, float]] = []
        self._speech_run = 0
        self._silence_run = 0
        # Server VAD with an idle timeout: the audio since the last item (or timeout).
        self._idle_frames: list[np.ndarray] = []
        self._idle_start = position

    # --- input ----------------------------------------------------------------------

    def feed(self, samples: np.ndarray) -> list[Event]:
        """Take 16 kHz int16 samples; return what they caused, in order."""
        data = np.concatenate([self._pending, samples.astype(np.int16, copy=False)])
        whole = data.size - data.size % self._frame
        self._pending = data[whole:]
        events: list[Event] = []
        for offset in range(0, whole, self._frame):
            frame = data[offset : offset + self._frame]
            events += self._on_frame(frame)
            self._position += self._frame
        return events

    def commit(self) -> list[Event]:
        """Close the open item now (the client's ``input_audio_buffer.commit``)."""
        if self._pending.size:
            frame, self._pending = self._pending, np.zeros(0, dtype=np.int16)
            self._open_if_manual()
            if self._item is not None:
                self._append(frame, self._vad.level(frame))
            self._position += frame.size
        if self._item is None:
            return []
        events: list[Event] = []
        if self.policy.server_vad:
            events.append(SpeechStopped(self._item, self._position))
        events.append(self._close())
        return events

    def clear(self) -> None:
        """Drop the open item and anything buffered (``input_audio_buffer.clear``)."""
        self._position += self._pending.size
        self._pending = np.zeros(0, dtype=np.int16)
        self._item = None
        self._frames, self._levels = [], []
        self._preroll = []
        self._speech_run = self._silence_run = 0
        self._idle_frames, self._idle_start = [], self._position

    @property
    def next_item(self) -> int:
        return self._next_item

    @property
    def position(self) -> int:
        """Samples taken so far, the session's audio clock."""
        return self._position + self._pending.size

    @property
    def buffered_samples(self) -> int:
        """Audio held for the open item (what a client's next commit would send)."""
        return sum(f.size for f in self._frames) + self._pending.size

    @property
    def item_open(self) -> bool:
        return self._item is not None

    # --- per frame ------------------------------------------------------------------

    def _on_frame(self, frame: np.ndarray) -> list[Event]:
        speech, level = self._vad.classify(frame)
        if not self.policy.server_vad:
            self._open_if_manual()
            self._append(frame, level)
            return self._after_append()
        if self._item is None:
            return self._idle(frame, speech, level)
        self._append(frame, level)
        self._silence_run = 0 if speech else self._silence_run + 1
        if self._silence_run * self.policy.vad.frame_ms >= self.policy.silence_duration_ms:
            stopped_at = self._position + frame.size - self._silence_run * self._frame
            item = self._item
            return [SpeechStopped(item, stopped_at), self._close()]
        return self._after_append()

    def _idle(self, frame: np.ndarray, speech: bool, level: float) -> list[Event]:
        self._preroll.append((self._position, frame, level))
        self._speech_run = self._speech_run + 1 if speech else 0
        pad_frames = max(1, self.policy.prefix_padding_ms // self.policy.vad.frame_ms)
        keep = pad_frames + self._speech_run
        self._preroll = self._preroll[-keep:]
        if self._speech_run * self.policy.vad.frame_ms < self.policy.min_speech_ms:
            return self._idle_timeout(frame)
        self._idle_frames = []
        self._item = self._new_item()
        self._item_start = self._preroll[0][0]
        for _, f, lv in self._preroll:
            self._append(f, lv)
        self._preroll, self._speech_run, self._silence_run = [], 0, 0
        return [SpeechStarted(self._item, self._item_start), *self._after_append()]

    def _idle_timeout(self, frame: np.ndarray) -> list[Event]:
        """Count a frame without speech; at ``idle_timeout_ms`` commit the quiet stretch."""
        timeout_ms = self.policy.idle_timeout_ms
        if timeout_ms is None:
            return []
        if not self._idle_frames:
            self._idle_start = self._position
        self._idle_frames.append(frame)
        if len(self._idle_frames) * self.policy.vad.frame_ms < timeout_ms:
            return []
        item = self._new_item()
        audio = np.concatenate(self._idle_frames)
        start, self._idle_frames = self._idle_start, []
        # The stretch is its own item now; speech that follows must not reach back into it.
        self._preroll, self._speech_run = [], 0
        return [
            TimeoutTriggered(item, start, start + audio.size),
            Committed(item, start, audio),
        ]

    def _open_if_manual(self) -> None:
        if self._item is None and not self.policy.server_vad:
            self._item = self._new_item()
            self._item_start = self._position

    def _append(self, frame: np.ndarray, level: float) -> None:
        self._frames.append(frame)
        self._levels.append(level)

    def _after_append(self) -> list[Event]:
        length_ms = samples_to_ms(sum(f.size for f in self._frames))
        if length_ms >= self.policy.max_utterance_ms:
            return self._forced_cut()
        due = (
            self.policy.first_partial_ms
            if self._last_partial_len == 0
            else self._last_partial_len + self.policy.partial_interval_ms
        )
        # No partial while the speaker pauses: the text cannot have changed.
        pausing = self._silence_run * self.policy.vad.frame_ms >= 200
        if length_ms >= due and self._item is not None and not pausing:
            self._last_partial_len = length_ms
            return [PartialDue(self._item, self._item_start, np.concatenate(self._frames))]
        return []

    def _forced_cut(self) -> list[Event]:
        """The window is full: cut at the quietest frame near its end, keep the rest open."""
        frame_ms = self.policy.vad.frame_ms
        n = len(self._frames)
        lo = max(self.policy.min_chunk_ms // frame_ms, n - self.policy.cut_search_ms // frame_ms)
        hi = n - 1  # the cut goes after frame `cut`; at least one frame stays open
        cut = lo + int(np.argmin(self._levels[lo:hi])) if hi > lo else n - 1
        rest_frames, rest_levels = self._frames[cut + 1 :], self._levels[cut + 1 :]
        self._frames, self._levels = self._frames[: cut + 1], self._levels[: cut + 1]
        rest_start = self._item_start + sum(f.size for f in self._frames)
        events: list[Event] = [self._close()]
        if rest_frames or not self.policy.server_vad:
            self._item = self._new_item()
            self._item_start = rest_start
            self._frames, self._levels = rest_frames, rest_levels
            if self.policy.server_vad:
                events.append(SpeechStarted(self._item, rest_start))
        return events

    def _close(self) -> Committed:
        assert self._item is not None  # callers check an item is open
        audio = np.concatenate(self._frames) if self._frames else np.zeros(0, dtype=np.int16)
        committed = Committed(self._item, self._item_start, audio)
        self._item = None
        self._frames, self._levels = [], []
        self._last_partial_len = 0
        self._silence_run = self._speech_run = 0
        self._preroll = []
        self._idle_frames = []
        return committed

    def _new_item(self) -> int:
        item = self._next_item
        self._next_item += 1
        return item


def seconds(samples: int) -> float:
    return samples / WHISPER_RATE
