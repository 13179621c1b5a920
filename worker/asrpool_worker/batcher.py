"""The batcher: windows of concurrent requests decoded in shared CTranslate2 calls.

``WhisperEngine.transcribe`` (``engine.py``) runs an eligible request through faster-whisper's
own ``WhisperModel.transcribe``, unchanged, on a copy of the model whose CTranslate2 object is
a ``BatchedWhisper``: its ``encode`` only keeps the window's mel features, and its
``generate`` hands the window, the request's own prompt and its decode settings to the
``Batcher`` and blocks the request's thread until the batch it joined is decoded. VAD, mel
features, the prompt, the temperature fallback, the no-speech test and the segment are all
faster-whisper's code, run per request as before; only the two model calls are shared. So a
request gets exactly what it would alone: the same features, prompt and settings go through
the same CTranslate2 calls, with more rows in them.

``lanes`` threads (``--num-workers``, the engine's parallel decodes) each ask the policy
(``batching.next_batch``) for the next batch and run it: one ``encode`` for every window,
one ``generate`` per prompt layout. Every member's result is handed back only when the whole
batch is over, so a member's memory reservation (``guard.py``, taken by the app before the
request entered the engine) outlives every allocation its window took part in: a batch
never holds more than the sum its members reserved. A batch that runs out of GPU memory
is split (``batching.split_after_oom``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import ctranslate2
import numpy as np

from asrpool_contract.wire import mentions_out_of_memory

from .batching import (
    BatchPolicy,
    Dispatch,
    Hold,
    Reason,
    Waiting,
    next_batch,
    prompt_layouts,
    split_after_oom,
)

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, Reason], None]


class Arrival:
    """A request inside the engine that has not handed over its first window yet.

    While any is open the policy may hold a batch for it (at most the window); it closes
    when the window is submitted, or when the request ends without one (VAD found no speech).
    """

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._batcher._arrived()


@dataclass(frozen=True)
class Window:
    """What ``BatchedWhisper.encode`` keeps instead of encoding: one window's mel features."""

    features: np.ndarray  # (1, n_mels, frames), float32


@dataclass
class _Item:
    window: Window
    prompt: list[int]
    kwargs: Mapping[str, Any]
    waiting: Waiting
    result: Future[Any] = field(default_factory=Future)


class Batcher:
    """Lanes that decode batches of windows on one CTranslate2 Whisper model."""

    def __init__(
        self,
        model: Any,  # ctranslate2.models.Whisper (untyped)
        policy: BatchPolicy,
        *,
        lanes: int,
        sot: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._policy = policy
        self._sot = sot
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: list[_Item] = []
        self._expected = 0
        self._closed = False
        self._observers: list[BatchObserver] = []
        # (windows, reason) → batches: what tests and the benchmark read; bounded by
        # max_batch × reasons.
        self.batches: Counter[tuple[int, Reason]] = Counter()
        self._lanes = [
            threading.Thread(target=self._lane, name=f"asrpool-batch-{i}", daemon=True)
            for i in range(max(lanes, 1))
        ]
        for lane in self._lanes:
            lane.start()

    @property
    def waiting(self) -> int:
        """Windows handed over and not yet in a batch."""
        with self._cond:
            return len(self._waiting)

    def observe(self, observer: BatchObserver) -> None:
        """Call ``observer(windows, reason)`` after each batch (from a lane thread)."""
        self._observers.append(observer)

    def expect(self) -> Arrival:
        """A request entered the engine and will hand over a window soon."""
        with self._cond:
            self._expected += 1
        return Arrival(self)

    def _arrived(self) -> None:
        with self._cond:
            self._expected -= 1
            self._cond.notify_all()  # a lane holding for it may go now

    def submit(
        self, window: Window, prompt: list[int], kwargs: Mapping[str, Any], arrival: Arrival
    ) -> Any:
        """Decode one window in the next batch that takes it; blocks until that batch ends."""
        key = (window.features.shape, _frozen(kwargs))
        item = _Item(window, prompt, kwargs, Waiting(key, self._clock()))
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._waiting.append(item)
            self._cond.notify_all()
        arrival.close()
        return item.result.result()

    def close(self) -> None:
        """Stop the lanes; windows still waiting (none once the app drained) fail."""
        with self._cond:
            self._closed = True
            left, self._waiting = self._waiting, []
            self._cond.notify_all()
        for item in left:
            item.result.set_exception(RuntimeError("the engine is closed"))
        for lane in self._lanes:
            if lane is not threading.current_thread():
                lane.join(timeout=30)

    def _lane(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            batch, reason = taken
            self._run(batch)
            with self._cond:
                self.batches[len(batch), reason] += 1
            for observer in self._observers:
                observer(len(batch), reason)

    def _take(self) -> tuple[list[_Item], Reason] | None:
        with self._cond:
            while not self._closed:
                now = self._clock()
                step = next_batch(
                    [item.waiting for item in self._waiting],
                    now=now,
                    expected=self._expected,
                    policy=self._policy,
                )
                if isinstance(step, Dispatch):
                    chosen = set(step.members)
                    batch = [self._waiting[i] for i in step.members]
                    self._waiting = [w for i, w in enumerate(self._waiting) if i not in chosen]
                    if self._waiting:
                        self._cond.notify_all()  # another free lane may take the rest
                    return batch, step.reason
                self._cond.wait(max(step.until - now, 0.0) if isinstance(step, Hold) else None)
        return None

    def _run(self, batch: list[_Item]) -> None:
        try:
            results = decode_windows(
                self._model,
                [item.window for item in batch],
                [item.prompt for item in batch],
                batch[0].kwargs,
                sot=self._sot,
            )
        except Exception as exc:
            retries = split_after_oom(batch) if mentions_out_of_memory(str(exc)) else []
            if retries:
                log.warning(
                    "a batch of %d windows ran out of memory; decoding them one at a time: %s",
                    len(batch),
                    exc,
                )
                for retry in retries:
                    self._run(retry)
                return
            for item in batch:
                item.result.set_exception(exc)
            return
        for item, result in zip(batch, results, strict=True):
            item.result.set_result(result)


def decode_windows(
    model: Any,
    windows: Sequence[Window],
    prompts: Sequence[list[int]],
    kwargs: Mapping[str, Any],
    *,
    sot: int,
) -> list[Any]:
    """One encoder call for all windows, one ``generate`` per prompt layout; results in order."""
    features = np.ascontiguousarray(np.concatenate([w.features for w in windows]))
    layouts = prompt_layouts([prompt.index(sot) for prompt in prompts])
    # Split encoder output goes through host memory (as faster-whisper does on several GPUs);
    # one layout passes it on where it is.
    to_cpu = len(layouts) > 1 and model.device == "cuda"
    encoded = model.encode(ctranslate2.StorageView.from_array(features), to_cpu=to_cpu)
    if len(layouts) == 1:
        return list(model.generate(encoded, list(prompts), **kwargs))
    # Through float32 (numpy has no bfloat16; float16 and bfloat16 round-trip exactly), back
    # to the encoder's own type for generate.
    rows = np.asarray(encoded.to(ctranslate2.DataType.float32))
    results: list[Any] = [None] * len(windows)
    for members in layouts:
        kept = np.ascontiguousarray(rows[members])  # alive while generate reads it
        part = ctranslate2.StorageView.from_array(kept).to(encoded.dtype)
        for index, result in zip(
            members, model.generate(part, [prompts[i] for i in members], **kwargs), strict=True
        ):
            results[index] = result
    return results


class BatchedWhisper:
    """Stands in for ``ctranslate2.models.Whisper`` inside one request's faster-whisper run.

    Only the calls an eligible request makes are batched (``encode`` then ``generate`` of one
    window, once per temperature tried); everything else is the real model's.
    """

    def __init__(self, model: Any, batcher: Batcher, arrival: Arrival) -> None:
        self._model = model
        self._batcher = batcher
        self._arrival = arrival

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, to_cpu: bool = False) -> Window:
        # A CPU StorageView made from numpy by faster-whisper; copied, as it may not own it.
        return Window(np.array(features, dtype=np.float32))

    def generate(self, features: Any, prompts: list[list[int]], **kwargs: Any) -> list[Any]:
        if not isinstance(features, Window) or len(prompts) != 1:
            raise TypeError("BatchedWhisper.generate takes one window that its encode kept")
        return [self._batcher.submit(features, prompts[0], kwargs, self._arrival)]


def _frozen(value: Any) -> Hashable:
    """A decode-settings mapping as a key: equal settings, equal keys."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value
