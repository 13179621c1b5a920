"""Finals on a short encoder context, with the real tiny.en model.

A live session's final (``asrpool_live``), and with ``--short-context all`` any clip that fits
one window, is decoded by faster-whisper as usual, except that its encoder reads the clip
plus 2 s (at least 20 s) instead of the 30 s window (worker ``engine.ShortContext``). It
must read the same words as the full window, keep its times inside the clip, and be used
only where the setting and the request allow it. The frames the encoder got are read by a spy
around the real CTranslate2 model (it forwards every call). Speed is measured in bench/.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from asrpool_worker import audio, drafts
from asrpool_worker.engine import DecodeOptions, WhisperEngine, default_model_dir
from tests.conftest import Clip
from tests.support.speech import SCORED, SENTENCES, word_error_rate

pytestmark = pytest.mark.slow

LIVE = DecodeOptions(timestamps=False, live=True)
UPLOAD = DecodeOptions(timestamps=False)
WINDOW = 3000


class EncoderSpy:
    """The real CTranslate2 Whisper model, noting how many frames each ``encode`` read."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.frames: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        self.frames.append(int(features.shape[-1]))
        return self._model.encode(features, to_cpu=to_cpu)


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    built = WhisperEngine(default_model_dir(), compute_type="int8", cpu_threads=1, num_workers=1)
    built._model.model = EncoderSpy(built._model.model)
    return built


@pytest.fixture
def spy(engine: WhisperEngine) -> EncoderSpy:
    found = engine._model.model
    assert isinstance(found, EncoderSpy)
    found.frames.clear()
    engine.short_context = "live"
    return found


@pytest.fixture(scope="module")
def samples(speech: dict[str, Clip]) -> dict[str, np.ndarray]:
    return {name: audio.decode(clip.path.read_bytes()) for name, clip in speech.items()}


def test_live_finals_read_the_words_the_full_window_reads(engine, spy, samples):
    short_errors, full_errors = [], []
    for name in SCORED:
        live = engine.transcribe(samples[name], LIVE)
        assert spy.frames[-1] == drafts.final_context_frames(samples[name].size) < WINDOW
        full = engine.transcribe(samples[name], UPLOAD)
        assert spy.frames[-1] == WINDOW
        short_errors.append(word_error_rate(SENTENCES[name], live.text))
        full_errors.append(word_error_rate(SENTENCES[name], full.text))
        assert word_error_rate(full.text, live.text) <= 0.2, (live.text, full.text)
    assert sum(short_errors) <= sum(full_errors) + 0.1, (short_errors, full_errors)


@pytest.mark.parametrize(
    ("setting", "opts", "short"),
    [
        ("live", LIVE, True),
        ("live", UPLOAD, False),
        ("all", UPLOAD, True),
        ("all", DecodeOptions(), True),  # with timestamps too
        ("drafts", LIVE, False),
        ("all", DecodeOptions(word_timestamps=True), False),  # word timing: the full window
    ],
)
def test_the_setting_and_the_request_say_which_finals_are_short(
    engine, spy, samples, setting, opts, short
):
    engine.short_context = setting
    engine.transcribe(samples["office"], opts)
    expected = drafts.final_context_frames(samples["office"].size) if short else WINDOW
    assert spy.frames and set(spy.frames) == {expected}, spy.frames


def test_a_short_final_with_timestamps_keeps_its_times_inside_the_clip(engine, spy, samples):
    engine.short_context = "all"
    clip = samples["station"]
    answer = engine.transcribe(clip, DecodeOptions())
    assert spy.frames == [drafts.final_context_frames(clip.size)]
    assert answer.segments
    duration = clip.size / audio.SAMPLE_RATE
    # The model may write its last timestamp in the margin after the speech; the answer
    # says no time past the clip.
    assert all(0.0 <= s.start < s.end <= duration for s in answer.segments), [
        (s.start, s.end) for s in answer.segments
    ]
    assert word_error_rate(SENTENCES["station"], answer.text) <= 0.25


def test_a_clip_with_no_room_for_the_margin_is_read_on_the_whole_window(engine, spy, samples):
    engine.short_context = "all"
    spoken = samples["long"][: 28 * audio.SAMPLE_RATE]  # every sentence: about 27 s
    long = np.concatenate([spoken, np.zeros(28 * audio.SAMPLE_RATE - spoken.size, np.float32)])
    engine.transcribe(long, UPLOAD)
    assert spy.frames and set(spy.frames) == {WINDOW}


def test_silence_as_a_live_final_reads_nothing(engine, spy):
    assert engine.transcribe(np.zeros(3 * audio.SAMPLE_RATE, np.float32), LIVE).text == ""
