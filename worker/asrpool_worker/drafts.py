"""Decodes on a short encoder context: how much of the 30 s window a clip needs, how many tokens.

Whisper's encoder is trained on 30 s windows, and faster-whisper pads every clip to one:
on CPU that window is most of a partial's cost (0.3-0.4 s for tiny.en on one thread, for
a 2 s utterance). CTranslate2 encodes shorter inputs too (its positional embeddings are
sliced, as whisper.cpp's ``audio_ctx`` does), so a draft encodes only its audio plus a
little silence: measured about 4× cheaper on the test sentences (``bench/README.md``).

Two things the full window gave for free are put back here:
- a floor on the context (``MIN_CONTEXT_S``): on one or two seconds of context the model
  tends to start the sentence again once the speech runs out;
- a token budget from the audio's length, and ``trim_repetition`` for a draft that starts
  over anyway (a partial that reads the sentence twice is worse than a shorter one).

Finals (the answer that stays) get a wider margin, ``final_context_frames``: at least 20 s
and 2 s of silence after the speech, rounded up to whole seconds so that finals of similar
length can share a batch. Everything else about a final is faster-whisper's own decode
(beam search, temperature fallback, prompt), only its encoder reads fewer frames: on the
test sentences the same words as the 30 s window at half the CPU
(``bench/draft_context.py``). Which finals get it is the worker's ``--short-context``:
live sessions' utterances (cut at speech by the router, so short by construction) by
default, every clip that fits one window with ``all``. Pure: called by
``engine.WhisperEngine``.
"""

from __future__ import annotations

from asrpool_contract.wire import WHISPER_SAMPLE_RATE

FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
FULL_WINDOW_FRAMES = 3000
PAD_S = 1.0  # silence after the speech: room for the model to see the words end
MIN_CONTEXT_S = 6.0
# A draft's context rounds up to whole buckets: drafts of similar length (from different
# sessions) then have features of one shape and may share a batch (batching.py). Two
# seconds add about 0.005 s of encoding on average; a batch of two saves about 0.03 s.
BUCKET_S = 2
# A draft reads the end of its session's text, at most this many tokens: a long prompt is a
# decoder pass of its own (223 tokens cost 0.02 s more a draft than 32), and prompts of one
# length share a generate call in a batch (batching.prompt_layouts). The final reads more.
PROMPT_TOKENS = 32
# sot_prev, then <|startoftranscript|>, language, task and <|notimestamps|>.
PROMPT_FRAME = 5
# Speech runs at 2-4 tokens a second; twice the fastest, plus room for punctuation.
TOKENS_PER_SECOND = 6
TOKENS_BASE = 8
MAX_TOKENS = 448  # the decoder's own limit
# Finals: a json answer (and a live final) is decoded without timestamp tokens, and so read
# a short context less surely: at 15 s, one test sentence lost words in 5 of 8 processes;
# at 20 s every sentence read as on the 30 s window in 8 of 8 (bench/draft_context.py).
FINAL_PAD_S = 2
FINAL_MIN_CONTEXT_S = 20
# Which finals are read on that context (the worker's --short-context); partials always are.
SHORT_CONTEXT_CHOICES = ("drafts", "live", "all")


def context_frames(samples: int) -> int:
    """Encoder frames for a draft of ``samples``: its audio and the pad, at least the floor,
    in whole buckets, never more than the window."""
    seconds = max(samples / WHISPER_SAMPLE_RATE + PAD_S, MIN_CONTEXT_S)
    buckets = -(-seconds // BUCKET_S)
    frames = min(FULL_WINDOW_FRAMES, int(buckets * BUCKET_S * FRAMES_PER_SECOND))
    return frames - frames % 2  # the encoder's stride-2 convolution halves it exactly


def context_samples(samples: int) -> int:
    """Audio (speech and trailing silence) that fills ``context_frames`` of features."""
    return context_frames(samples) * WHISPER_SAMPLE_RATE // FRAMES_PER_SECOND


def final_context_frames(samples: int) -> int | None:
    """Encoder frames for a final of ``samples``; None when it needs the whole window."""
    seconds = max(-(-samples // WHISPER_SAMPLE_RATE) + FINAL_PAD_S, FINAL_MIN_CONTEXT_S)
    frames = seconds * FRAMES_PER_SECOND
    return frames if frames < FULL_WINDOW_FRAMES else None


def token_budget(samples: int) -> int:
    """New tokens a draft of ``samples`` may read (its prompt comes on top)."""
    seconds = samples / WHISPER_SAMPLE_RATE
    return min(MAX_TOKENS, TOKENS_BASE + int(TOKENS_PER_SECOND * seconds))


def batch_max_length(frames: int) -> int:
    """``max_length`` for a batch of drafts on ``frames`` of context: any member's prompt and
    budget fit.

    CTranslate2 takes one ``max_length`` a call (prompt included), so drafts of one context
    share it, and each keeps only its own budget's tokens: greedy decoding reads each token
    from the ones before, so those are the tokens it would have read alone.
    """
    room = 1 + PROMPT_TOKENS + PROMPT_FRAME
    return min(MAX_TOKENS, room + token_budget(frames * WHISPER_SAMPLE_RATE // FRAMES_PER_SECOND))


def trim_repetition(text: str, *, n: int = 3) -> str:
    """The draft up to where it starts repeating itself: the first ``n`` words seen before.

    ``"Turn left at the corner. Turn left at the"`` reads ``"Turn left at the corner."``,
    ``"She borrowed three books, three books, three"`` reads ``"She borrowed three books,"``.
    Compared case- and punctuation-blind. One utterance (at most 12 s) rarely says the same
    three words twice; a draft that does is shortened, and its final says it in full.
    """
    words = text.split()
    keys = ["".join(ch for ch in w.lower() if ch.isalnum()) for w in words]
    seen: set[tuple[str, ...]] = set()
    for start in range(len(keys) - n + 1):
        gram = tuple(keys[start : start + n])
        if gram in seen:
            return " ".join(words[:start])
        seen.add(gram)
    return text
