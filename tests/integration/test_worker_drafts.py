"""Live partials on a short encoder context, with the real tiny.en model.

A draft (``asrpool_draft``) is decoded on its audio plus a second of silence instead of a
30 s window (worker drafts.py). It must still read the words: a whole sentence's draft
reads the sentence, a draft of the first half reads its start without looping back, and
silence reads nothing. Speed is measured in bench/, not here.
"""

from __future__ import annotations

import numpy as np
import pytest

from asrpool_worker import audio
from asrpool_worker.engine import DecodeOptions, WhisperEngine, _short_context, default_model_dir
from tests.conftest import Clip
from tests.support.speech import SCORED, SENTENCES, normalize, word_error_rate

pytestmark = pytest.mark.slow

DRAFT = DecodeOptions(timestamps=False, draft=True)


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine(default_model_dir(), compute_type="int8", cpu_threads=1, num_workers=1)


@pytest.fixture(scope="module")
def samples(speech: dict[str, Clip]) -> dict[str, np.ndarray]:
    return {name: audio.decode(clip.path.read_bytes()) for name, clip in speech.items()}


def test_whole_sentences_drafts_read_the_sentences(engine, samples):
    # Greedy decoding misreads a word here and there (on the full window too: "walk to
    # Bloch's Tumestation"); the final, beam search on the full window, corrects it.
    errors = []
    for name in SCORED:
        draft = engine.transcribe(samples[name], DRAFT)
        assert [s.start for s in draft.segments] == [0.0], name
        assert draft.duration == pytest.approx(samples[name].size / audio.SAMPLE_RATE)
        errors.append(word_error_rate(SENTENCES[name], draft.text))
    assert max(errors) <= 0.4, errors
    assert sum(errors) / len(errors) <= 0.15, errors


@pytest.mark.parametrize("name", SCORED)
def test_a_half_sentences_draft_reads_its_start_once(engine, samples, name):
    half = samples[name][: samples[name].size // 2]
    words = normalize(engine.transcribe(half, DRAFT).text).split()
    sentence = normalize(SENTENCES[name]).split()
    assert words, name
    assert words[0] == sentence[0], words
    assert len(words) <= len(sentence), words  # it did not start the sentence over


def test_silence_drafts_to_no_text(engine):
    assert engine.transcribe(np.zeros(2 * audio.SAMPLE_RATE, np.float32), DRAFT).text == ""


def test_a_drafts_prompt_is_context_not_text(engine, samples):
    prompted = engine.transcribe(
        samples["office"], DecodeOptions(timestamps=False, draft=True, prompt="Earlier: weather.")
    )
    assert "weather" not in prompted.text.lower()
    assert word_error_rate(SENTENCES["office"], prompted.text) <= 0.25


def test_a_draft_after_a_minute_of_session_text_still_reads_its_words(engine, samples):
    # A live session prompts each draft with its text so far (up to the router's limit):
    # far more tokens than a short draft's own budget. CTranslate2 counts the prompt in
    # max_length; a budget that did not add it refused every such draft.
    session = " ".join(SENTENCES.values()) * 2
    for name in ("fox", "station"):
        start = samples[name][: samples[name].size // 3]
        drafted = engine.transcribe(
            start, DecodeOptions(timestamps=False, draft=True, prompt=session)
        )
        assert normalize(drafted.text).split()[:1] == normalize(SENTENCES[name]).split()[:1]


@pytest.mark.parametrize(
    ("opts", "kwargs", "short"),
    [
        (DRAFT, {"without_timestamps": True, "language": "en"}, True),
        (DecodeOptions(timestamps=False), {"without_timestamps": True, "language": "en"}, False),
        (DRAFT, {"language": "en"}, False),  # longer than one window
        (DRAFT, {"without_timestamps": True, "language": None}, False),  # detect: full window
        (
            DecodeOptions(timestamps=False, draft=True, word_timestamps=True),
            {"without_timestamps": True, "language": "en"},
            False,
        ),
    ],
)
def test_only_a_one_window_draft_in_a_known_language_is_decoded_short(opts, kwargs, short):
    assert _short_context(opts, kwargs) is short
