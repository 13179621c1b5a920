"""The live chunker: cuts at silences, never mid-word, partial cadence, coverage."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from asrpool_router.logic.chunking import (
    Chunker,
    ChunkingPolicy,
    Committed,
    PartialDue,
    SpeechStarted,
    SpeechStopped,
    TimeoutTriggered,
)
from asrpool_router.logic.vad import VadPolicy

RATE = 16_000


def tone(ms: int, amplitude: int = 6000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def quiet(ms: int, amplitude: int = 0) -> np.ndarray:
    rng = np.random.default_rng(ms)
    return (rng.standard_normal(int(RATE * ms / 1000)) * amplitude).astype(np.int16)


def feed_in_pieces(chunker: Chunker, audio: np.ndarray, piece: int = 1600) -> list:
    events = []
    for i in range(0, audio.size, piece):
        events += chunker.feed(audio[i : i + piece])
    return events


def frames_of(ms: int, frame_ms: int = 30) -> int:
    """Samples in the whole frames that first reach ``ms`` (the chunker counts in frames)."""
    return -(-ms // frame_ms) * frame_ms * RATE // 1000


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


def test_two_utterances_separated_by_a_pause_become_two_items_cut_in_the_pause():
    audio = np.concatenate([quiet(400), tone(1500), quiet(800), tone(1200), quiet(700)])
    events = feed_in_pieces(Chunker(ChunkingPolicy()), audio)
    commits = of(Committed, events)
    assert [c.item for c in commits] == [1, 2]
    first_speech_end = (400 + 1500) * 16
    second_speech_start = (400 + 1500 + 800) * 16
    # Each item holds its whole word, and the cut falls in the pause between them.
    assert (
        commits[0].start <= 400 * 16
        and commits[0].start + commits[0].audio.size >= first_speech_end
    )
    assert commits[0].start + commits[0].audio.size <= second_speech_start
    assert commits[1].start <= second_speech_start
    assert [type(e).__name__ for e in events if not isinstance(e, PartialDue)] == [
        "SpeechStarted",
        "SpeechStopped",
        "Committed",
        "SpeechStarted",
        "SpeechStopped",
        "Committed",
    ]


def test_prefix_padding_keeps_audio_before_the_detected_start():
    audio = np.concatenate([quiet(1000), tone(1000), quiet(700)])
    started = of(
        SpeechStarted, feed_in_pieces(Chunker(ChunkingPolicy(prefix_padding_ms=300)), audio)
    )
    assert started and 1000 * 16 - 330 * 16 <= started[0].start <= 1000 * 16 - 250 * 16


def test_a_click_shorter_than_min_speech_is_not_an_utterance():
    audio = np.concatenate([quiet(500), tone(60), quiet(1500)])
    assert feed_in_pieces(Chunker(ChunkingPolicy(min_speech_ms=120)), audio) == []


def test_short_pauses_inside_speech_do_not_cut():
    audio = np.concatenate([tone(800), quiet(200), tone(800), quiet(600)])
    commits = of(Committed, feed_in_pieces(Chunker(ChunkingPolicy(silence_duration_ms=500)), audio))
    assert len(commits) == 1


def test_partials_come_at_a_steady_cadence_and_stop_during_the_pause():
    policy = ChunkingPolicy(first_partial_ms=500, partial_interval_ms=700)
    audio = np.concatenate([tone(3000), quiet(700)])
    partials = of(PartialDue, feed_in_pieces(Chunker(policy), audio, piece=320))
    lengths_ms = [p.audio.size / 16 for p in partials]
    assert lengths_ms[0] == 510  # the first frame boundary at or past 500 ms (30 ms frames)
    gaps = np.diff(lengths_ms)
    assert all(690 <= g <= 750 for g in gaps), lengths_ms
    assert lengths_ms[-1] <= 3000 + 300 + 200  # none for audio well into the pause


def test_long_speech_is_cut_at_the_quietest_frame_within_the_window():
    policy = ChunkingPolicy(max_utterance_ms=4000, min_chunk_ms=1000, cut_search_ms=2000)
    # A softer stretch (a breath between words) at 2.6–2.7 s, no real pause.
    audio = np.concatenate([tone(2600), tone(100, amplitude=1500), tone(3000), quiet(700)])
    events = feed_in_pieces(Chunker(policy), audio)
    commits = of(Committed, events)
    assert len(commits) == 2
    cut_ms = commits[0].audio.size / 16
    assert 2600 <= cut_ms <= 2730, cut_ms  # inside the soft stretch
    assert commits[1].start == commits[0].start + commits[0].audio.size
    assert of(SpeechStopped, events)[0].item == 2  # the cut is not an end of speech


def test_manual_mode_commits_everything_sent_as_one_item():
    chunker = Chunker(ChunkingPolicy(server_vad=False))
    audio = np.concatenate([quiet(300), tone(500), quiet(1000), tone(500)])
    events = feed_in_pieces(chunker, audio, piece=999)
    assert of(Committed, events) == []
    assert chunker.buffered_samples == audio.size
    commit = chunker.commit()
    assert len(commit) == 1 and isinstance(commit[0], Committed)
    np.testing.assert_array_equal(commit[0].audio, audio)
    assert chunker.commit() == []


def test_clear_drops_the_open_item():
    chunker = Chunker(ChunkingPolicy())
    chunker.feed(tone(1000))
    assert chunker.item_open
    chunker.clear()
    assert not chunker.item_open and chunker.buffered_samples == 0
    assert chunker.commit() == []


def test_an_idle_timeout_commits_each_quiet_stretch_after_saying_so():
    chunker = Chunker(ChunkingPolicy(idle_timeout_ms=2000))
    events = feed_in_pieces(chunker, quiet(4500, amplitude=30))
    kinds = [type(e) for e in events]
    assert kinds == [TimeoutTriggered, Committed, TimeoutTriggered, Committed]
    first, second = of(TimeoutTriggered, events)
    stretch = frames_of(2000)
    assert (first.start, first.end) == (0, stretch)
    assert (second.start, second.end) == (stretch, 2 * stretch)
    commits = of(Committed, events)
    assert [c.item for c in commits] == [first.item, second.item] == [1, 2]
    assert [c.audio.size for c in commits] == [stretch, stretch]


def test_the_idle_timeout_counts_from_the_end_of_the_last_utterance():
    chunker = Chunker(ChunkingPolicy(idle_timeout_ms=2000))
    events = feed_in_pieces(chunker, np.concatenate([quiet(1500), tone(1000), quiet(2000)]))
    (spoken,) = [c for c in of(Committed, events) if c.item == 1]
    assert not of(TimeoutTriggered, events)  # speech restarted the count
    events = feed_in_pieces(chunker, quiet(1000))
    (timeout,) = of(TimeoutTriggered, events)
    assert timeout.start == spoken.start + spoken.audio.size and timeout.item == 2
    assert timeout.end - timeout.start == frames_of(2000)


def test_no_idle_timeout_when_the_client_commits_by_hand():
    chunker = Chunker(ChunkingPolicy(server_vad=False, idle_timeout_ms=1000))
    assert not of(TimeoutTriggered, feed_in_pieces(chunker, quiet(3000)))


def test_a_chunker_that_takes_over_continues_the_items_and_the_clock():
    old = Chunker(ChunkingPolicy())
    feed_in_pieces(old, np.concatenate([tone(1000), quiet(800)]))
    old.commit()
    new = Chunker(
        ChunkingPolicy(silence_duration_ms=800), first_item=old.next_item, position=old.position
    )
    (started,) = of(SpeechStarted, feed_in_pieces(new, tone(1000)))
    assert started.item == 2 and started.start >= 1800 * 16 - 300 * 16


def test_noise_reduction_keeps_a_loud_hum_from_opening_utterances_but_not_speech():
    t = np.arange(RATE * 3) / RATE
    hum = (8000 * np.sin(2 * np.pi * 50 * t)).astype(np.int16)
    plain = Chunker(ChunkingPolicy())
    assert of(SpeechStarted, feed_in_pieces(plain, hum))  # the hum counts as speech
    reduced = ChunkingPolicy(vad=VadPolicy(low_cut_hz=100.0))
    assert not of(SpeechStarted, feed_in_pieces(Chunker(reduced), hum))
    voice = np.concatenate([hum[:RATE], (hum[RATE : 2 * RATE] // 2 + tone(1000)), hum[:RATE]])
    events = feed_in_pieces(Chunker(reduced), voice)
    (started,) = of(SpeechStarted, events)
    assert abs(started.start - (RATE - 300 * 16)) <= 90 * 16  # at the voice, less the padding


pieces = st.lists(
    st.tuples(st.sampled_from(["speech", "quiet", "soft"]), st.integers(30, 2500)),
    min_size=1,
    max_size=12,
)


def render(plan: list[tuple[str, int]]) -> np.ndarray:
    parts = {
        "speech": lambda ms: tone(ms),
        "quiet": lambda ms: quiet(ms),
        "soft": lambda ms: tone(ms, amplitude=900),
    }
    return np.concatenate([parts[kind](ms) for kind, ms in plan])


@settings(max_examples=60, deadline=None)
@given(plan=pieces, piece=st.integers(1, 5000))
def test_manual_mode_items_cover_the_audio_exactly_once(plan, piece):
    audio = render(plan)
    chunker = Chunker(ChunkingPolicy(server_vad=False, max_utterance_ms=3000))
    events = feed_in_pieces(chunker, audio, piece) + chunker.commit()
    commits = of(Committed, events)
    assert commits, "everything sent is committed"
    position = 0
    for c in commits:
        assert c.start == position  # contiguous, no gap, no overlap
        position += c.audio.size
    assert position == audio.size
    np.testing.assert_array_equal(np.concatenate([c.audio for c in commits]), audio)


@settings(max_examples=60, deadline=None)
@given(plan=pieces, piece=st.integers(1, 5000))
def test_vad_items_are_ordered_disjoint_bounded_and_hold_every_loud_sample(plan, piece):
    audio = render(plan)
    policy = ChunkingPolicy(max_utterance_ms=3000, min_chunk_ms=800)
    chunker = Chunker(policy)
    events = feed_in_pieces(chunker, audio, piece) + chunker.commit()
    commits = of(Committed, events)
    covered = np.zeros(audio.size, dtype=bool)
    end = 0
    for c in commits:
        assert c.start >= end  # in order, no overlap
        np.testing.assert_array_equal(c.audio, audio[c.start : c.start + c.audio.size])
        assert c.audio.size <= policy.max_utterance_ms * 16
        covered[c.start : c.start + c.audio.size] = True
        end = c.start + c.audio.size
    # Any loud stretch long enough to be a word is inside some item.
    loud = np.abs(audio.astype(np.int32)) > 3000
    start = 0
    for kind, ms in plan:
        n = int(RATE * ms / 1000)
        if kind == "speech" and ms >= 200:
            assert covered[start : start + n][loud[start : start + n]].all()
        start += n
    # Every item that started was committed exactly once.
    assert sorted(e.item for e in of(SpeechStarted, events)) == sorted(c.item for c in commits)


@settings(max_examples=60, deadline=None)
@given(plan=pieces, piece=st.integers(1, 5000))
def test_with_an_idle_timeout_items_stay_ordered_disjoint_and_each_timeout_is_committed(
    plan, piece
):
    audio = render(plan)
    chunker = Chunker(ChunkingPolicy(max_utterance_ms=3000, min_chunk_ms=800, idle_timeout_ms=1000))
    events = feed_in_pieces(chunker, audio, piece) + chunker.commit()
    end, items = 0, []
    for n, event in enumerate(events):
        if isinstance(event, Committed):
            assert event.start >= end
            np.testing.assert_array_equal(
                event.audio, audio[event.start : event.start + event.audio.size]
            )
            end = event.start + event.audio.size
            items.append(event.item)
        if isinstance(event, TimeoutTriggered):
            following = events[n + 1]
            assert isinstance(following, Committed) and following.item == event.item
            assert (following.start, following.start + following.audio.size) == (
                event.start,
                event.end,
            )
            assert event.end - event.start == frames_of(1000)
    assert items == sorted(set(items))  # each item once, in order
