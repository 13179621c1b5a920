"""Cross-request batching policy: which waiting windows go into one engine call, and when.

An eligible request (one 30 s window, no timestamps: see ``engine``) hands its window, with
its own prompt and decode settings, to the batcher (``batcher.py``); a lane of the batcher
that is free asks ``next_batch`` what to run. The oldest waiting window leads, and only
windows with its decode settings (the ``key``: beam size, sampling temperature, suppressed
tokens, what CTranslate2 takes once per call) join it. Task, language and prompt are in
each window's own prompt, so they need not match. Rules, in order::

    nothing waits                                 → Idle      (sleep until a window comes)
    max_batch windows with the leader's key wait  → Dispatch  FULL
    no other eligible request is on its way       → Dispatch  ALL_ARRIVED (so a lone
                                                              request never waits)
    the leader has waited the whole window        → Dispatch  WINDOW
    otherwise                                     → Hold until the leader's window ends

"On its way" (``expected``) counts requests already inside the engine (VAD, mel features)
that have not handed over their window yet: only they can join within a few milliseconds,
so waiting for nobody is never done. Windows that come while every lane is busy wait for a
lane, and by then the leader's window is over: under load batches form at once from what
queued, which is where batching pays.

Pure: time is a parameter; the shell holds the lock, the clock and the threads.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPolicy:
    """The two knobs: ``--max-batch`` and ``--batch-window-ms`` (here in seconds)."""

    max_batch: int = 8
    window_s: float = 0.010

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if self.window_s < 0:
            raise ValueError("the batch window cannot be negative")


class Reason(StrEnum):
    """Why a batch was sent (a label on the worker's batch metric)."""

    FULL = "full"
    ALL_ARRIVED = "all_arrived"  # nothing else is on its way: waiting would only add latency
    WINDOW = "window"


@dataclass(frozen=True)
class Waiting:
    """One window waiting for a lane: its decode settings and when it was handed over."""

    key: Hashable
    since: float


@dataclass(frozen=True)
class Dispatch:
    members: tuple[int, ...]  # indexes into the waiting list, oldest first
    reason: Reason


@dataclass(frozen=True)
class Hold:
    until: float  # ask again then, or as soon as a window arrives


@dataclass(frozen=True)
class Idle:
    pass


def next_batch(
    waiting: Sequence[Waiting], *, now: float, expected: int, policy: BatchPolicy
) -> Dispatch | Hold | Idle:
    """What a free lane does now; ``waiting`` is in arrival order."""
    if not waiting:
        return Idle()
    leader = waiting[0]
    members = tuple(i for i, w in enumerate(waiting) if w.key == leader.key)[: policy.max_batch]
    if len(members) == policy.max_batch:
        return Dispatch(members, Reason.FULL)
    if expected <= 0:
        return Dispatch(members, Reason.ALL_ARRIVED)
    deadline = leader.since + policy.window_s
    if now >= deadline:
        return Dispatch(members, Reason.WINDOW)
    return Hold(deadline)


def prompt_layouts(sot_positions: Sequence[int]) -> list[list[int]]:
    """Members grouped by where their prompt puts <|startoftranscript|>, first seen first.

    CTranslate2's ``Whisper.generate`` refuses prompts of one call that put it at different
    places, and padding a shorter prompt would change what the model reads. So a batch is
    one encoder call for all its windows, then one ``generate`` per layout: requests with
    different prompts (realtime finals, each prompted with its session's text) share the
    encoder and keep their own prompts.
    """
    groups: dict[int, list[int]] = {}
    for index, position in enumerate(sot_positions):
        groups.setdefault(position, []).append(index)
    return list(groups.values())


def split_after_oom(members: Sequence[T]) -> list[list[T]]:
    """A batch that ran out of GPU memory: what to try next, one batch per entry.

    Two or more: each member again alone, one after another (a batch needs the sum of its
    members' memory at once; alone, each needs what the memory guard reserved for it), so a
    request is not refused for sharing a call. One: nothing; it answers ``gpu_oom`` and the
    router tries another pod, as without batching.
    """
    return [[member] for member in members] if len(members) > 1 else []
