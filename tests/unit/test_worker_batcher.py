"""The batcher's shell (worker/asrpool_worker/batcher.py): lanes, holds, layouts, OOM splits.

TEST DOUBLE: ``FakeWhisper`` stands in for ``ctranslate2.models.Whisper`` so that these
tests see every engine call and can make one block or run out of memory. It refuses prompts
that put <|startoftranscript|> at different places in one call, as CTranslate2 does, and
answers each row with that row's window and prompt, so a result that went to the wrong
request shows. tests/integration/test_worker_batching.py runs the real model.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import ctranslate2
import numpy as np
import pytest

from asrpool_worker.batcher import Arrival, Batcher, Window
from asrpool_worker.batching import BatchPolicy, Reason

SOT = 7
OOM = "CUDA failed with error out of memory"
HOUR = 3600.0  # a window no test may wait out: passing means it was not waited for
GREEDY = {"beam_size": 1, "max_length": 448}


def prompt(*previous: int) -> list[int]:
    """Whisper's layout: previous text, then <|startoftranscript|> and what follows it."""
    return [1, *previous, SOT, 9] if previous else [SOT, 9]


class FakeWhisper:
    device = "cpu"

    def __init__(self) -> None:
        self.encodes: list[int] = []  # rows per encoder call
        self.generates: list[int] = []  # rows per generate call
        self.oom_over: int | None = None  # an encoder call with more rows runs out of memory
        self.doomed: set[int] = set()  # windows that run out of memory even alone
        self.gate: threading.Event | None = None  # generate of a 3-token prompt waits here
        self.broken: Exception | None = None  # every encoder call raises it
        self.dtype = ctranslate2.DataType.float32  # of the encoder output (float16 on GPUs)
        self.generate_dtypes: list[Any] = []

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        rows = np.asarray(features)
        self.encodes.append(len(rows))
        if self.broken is not None:
            raise self.broken
        if self.oom_over is not None and len(rows) > self.oom_over:
            raise RuntimeError(OOM)
        # Each row of the "encoder output" carries its window's number.
        encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(rows[:, 0, :2]))
        return encoded.to(self.dtype)

    def generate(self, encoded: Any, prompts: list[list[int]], **kwargs: Any) -> list[Any]:
        if len({p.index(SOT) for p in prompts}) > 1:
            raise ValueError("<|startoftranscript|> must be at the same position in all batches")
        self.generate_dtypes.append(encoded.dtype)
        rows = np.asarray(encoded.to(ctranslate2.DataType.float32))
        if self.gate is not None and any(len(p) == 3 for p in prompts):
            assert self.gate.wait(10), "the test never opened the gate"
        if self.doomed & {int(r[0]) for r in rows}:
            raise RuntimeError(OOM)
        self.generates.append(len(prompts))
        return [
            SimpleNamespace(window=int(r[0]), prompt=p, kwargs=kwargs)
            for r, p in zip(rows, prompts, strict=True)
        ]


def window(number: int) -> Window:
    return Window(np.full((1, 3, 4), number, dtype=np.float32))


@pytest.fixture
def fake() -> FakeWhisper:
    return FakeWhisper()


@pytest.fixture
def make(fake: FakeWhisper) -> Iterator[Callable[..., Batcher]]:
    made: list[Batcher] = []

    def build(window_s: float = HOUR, max_batch: int = 8, lanes: int = 1) -> Batcher:
        batcher = Batcher(fake, BatchPolicy(max_batch, window_s), lanes=lanes, sot=SOT)
        made.append(batcher)
        return batcher

    yield build
    for batcher in made:
        batcher.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def send(
    pool: ThreadPoolExecutor,
    batcher: Batcher,
    number: int,
    arrival: Arrival,
    tokens: list[int] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Future[Any]:
    return pool.submit(
        batcher.submit,
        window(number),
        tokens if tokens is not None else prompt(),
        kwargs if kwargs is not None else GREEDY,
        arrival,
    )


def wait_until(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):  # bounded: 10 s
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_a_lone_request_is_decoded_without_waiting_for_the_window(make, fake, pool):
    batcher = make(window_s=HOUR)
    result = send(pool, batcher, 1, batcher.expect()).result(timeout=10)
    assert result.window == 1
    assert batcher.batches == Counter({(1, Reason.ALL_ARRIVED): 1})
    assert fake.encodes == [1]


def test_a_request_on_its_way_is_waited_for_and_joins_the_batch(make, fake, pool):
    batcher = make(window_s=HOUR)
    first, second = batcher.expect(), batcher.expect()
    one = send(pool, batcher, 1, first)
    wait_until(lambda: batcher.waiting == 1, "the first window waits")
    time.sleep(0.1)
    assert not one.done() and fake.encodes == []  # held: another request is on its way
    two = send(pool, batcher, 2, second)
    assert (one.result(timeout=10).window, two.result(timeout=10).window) == (1, 2)
    assert batcher.batches == Counter({(2, Reason.ALL_ARRIVED): 1})
    assert (fake.encodes, fake.generates) == ([2], [2])


def test_the_window_bounds_the_wait_for_a_request_that_never_comes(make, pool):
    batcher = make(window_s=0.05)
    batcher.expect()  # on its way, and never arrives
    assert send(pool, batcher, 1, batcher.expect()).result(timeout=10).window == 1
    assert batcher.batches == Counter({(1, Reason.WINDOW): 1})


def test_a_request_that_ends_without_a_window_releases_the_hold(make, pool):
    batcher = make(window_s=HOUR)
    silent = batcher.expect()  # e.g. VAD found no speech: it never hands over a window
    one = send(pool, batcher, 1, batcher.expect())
    wait_until(lambda: batcher.waiting == 1, "the window waits")
    silent.close()
    silent.close()  # closing twice counts once
    assert one.result(timeout=10).window == 1
    assert batcher.batches == Counter({(1, Reason.ALL_ARRIVED): 1})


def test_a_full_batch_goes_at_once_and_the_rest_wait_for_the_next(make, fake, pool):
    batcher = make(window_s=HOUR, max_batch=2)
    arrivals = [batcher.expect() for _ in range(4)]
    futures = [send(pool, batcher, n, arrivals[n]) for n in range(3)]
    wait_until(lambda: fake.encodes == [2], "a full batch of two")
    fourth = send(pool, batcher, 3, arrivals[3])
    assert sorted(f.result(timeout=10).window for f in [*futures, fourth]) == [0, 1, 2, 3]
    assert batcher.batches[2, Reason.FULL] == 2


def test_each_window_keeps_its_own_prompt_and_layouts_share_one_encoder_call(make, fake, pool):
    batcher = make()
    prompts = [prompt(), prompt(11), prompt(12, 13), prompt(14)]
    arrivals = [batcher.expect() for _ in prompts]
    futures = [send(pool, batcher, n, arrivals[n], p) for n, p in enumerate(prompts)]
    results = [f.result(timeout=10) for f in futures]
    assert [(r.window, r.prompt) for r in results] == list(enumerate(prompts))
    # One encoder call; one generate per place of <|startoftranscript|> (0, 2, 3).
    assert fake.encodes == [4]
    assert sorted(fake.generates) == [1, 1, 2]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_split_encoder_output_keeps_its_type_and_rows(make, fake, pool, dtype):
    fake.dtype = getattr(ctranslate2.DataType, dtype)
    batcher = make()
    prompts = [prompt(), prompt(11), prompt()]
    arrivals = [batcher.expect() for _ in prompts]
    futures = [send(pool, batcher, n + 100, arrivals[n], p) for n, p in enumerate(prompts)]
    assert [f.result(timeout=10).window for f in futures] == [100, 101, 102]
    assert fake.generate_dtypes == [fake.dtype, fake.dtype]


def test_different_decode_settings_never_share_a_call(make, fake, pool):
    batcher = make()
    beam = {"beam_size": 5, "max_length": 448}
    arrivals = [batcher.expect() for _ in range(4)]
    settings = [GREEDY, beam, GREEDY, beam]
    futures = [send(pool, batcher, n, arrivals[n], kwargs=k) for n, k in enumerate(settings)]
    for n, future in enumerate(futures):
        assert future.result(timeout=10).kwargs == settings[n]
    assert sorted(fake.encodes) == [2, 2]


def test_results_come_back_only_when_the_whole_batch_is_over(make, fake, pool):
    # What keeps the memory guard honest: a member's reservation must outlive every call
    # its window took part in, so none is answered while another layout still decodes.
    batcher = make()
    fake.gate = threading.Event()
    arrivals = [batcher.expect() for _ in range(2)]
    quick = send(pool, batcher, 0, arrivals[0], prompt(11, 12))
    slow = send(pool, batcher, 1, arrivals[1], [SOT, 9, 10])  # 3 tokens: its generate waits
    wait_until(lambda: fake.generates == [1], "the first layout is decoded")
    time.sleep(0.1)
    assert not quick.done() and not slow.done()
    fake.gate.set()
    assert (quick.result(timeout=10).window, slow.result(timeout=10).window) == (0, 1)


def test_a_batch_that_runs_out_of_memory_is_decoded_again_one_at_a_time(make, fake, pool):
    batcher = make()
    fake.oom_over = 1  # only a single window fits
    fake.doomed = {2}  # and this one does not fit even alone
    arrivals = [batcher.expect() for _ in range(3)]
    futures = [send(pool, batcher, n, arrivals[n]) for n in range(3)]
    assert futures[0].result(timeout=10).window == 0
    assert futures[1].result(timeout=10).window == 1
    with pytest.raises(RuntimeError, match="out of memory"):
        futures[2].result(timeout=10)
    assert fake.encodes == [3, 1, 1, 1]
    assert batcher.batches == Counter({(3, Reason.ALL_ARRIVED): 1})


def test_a_lone_window_that_runs_out_of_memory_fails_without_a_retry(make, fake, pool):
    batcher = make()
    fake.doomed = {5}
    with pytest.raises(RuntimeError, match="out of memory"):
        send(pool, batcher, 5, batcher.expect()).result(timeout=10)
    assert fake.encodes == [1]


def test_any_other_error_fails_every_member_once(make, fake, pool):
    batcher = make()
    arrivals = [batcher.expect() for _ in range(2)]
    fake.broken = ValueError("bug")
    futures = [send(pool, batcher, n, arrivals[n]) for n in range(2)]
    for future in futures:
        with pytest.raises(ValueError, match="bug"):
            future.result(timeout=10)


def test_two_lanes_run_two_batches_at_once(make, fake, pool):
    batcher = make(lanes=2)
    fake.gate = threading.Event()
    held = send(pool, batcher, 0, batcher.expect(), [SOT, 9, 10])  # takes lane one, waits
    wait_until(lambda: fake.encodes == [1], "the first lane is busy")
    other = send(pool, batcher, 1, batcher.expect())
    assert other.result(timeout=10).window == 1  # the second lane did not wait for the first
    assert not held.done()
    fake.gate.set()
    assert held.result(timeout=10).window == 0


def test_closing_fails_what_still_waits_and_refuses_more(make, fake, pool):
    batcher = make()
    fake.gate = threading.Event()
    held = send(pool, batcher, 0, batcher.expect(), [SOT, 9, 10])
    wait_until(lambda: fake.encodes == [1], "the lane is busy")
    queued = send(pool, batcher, 1, batcher.expect())
    wait_until(lambda: batcher.waiting == 1, "a window waits")
    closing = pool.submit(batcher.close)
    with pytest.raises(RuntimeError, match="closed"):
        queued.result(timeout=10)
    fake.gate.set()
    closing.result(timeout=10)
    assert held.result(timeout=10).window == 0
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(window(2), prompt(), GREEDY, batcher.expect())
