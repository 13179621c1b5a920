"""Settings classes that name their own flags: one place per setting, not four.

A frozen dataclass marks each field a user may set with ``flagged(default, "--flag",
"ASRPOOL_VAR", help)``. From that one line come the argparse option (its default read from
the variable, see ``envflags``), the settings built from parsed flags, and the argv that
passes the same settings on to a child process (``asrpool local`` starting its workers).
A new worker setting is therefore written once, in ``WorkerSettings``.

Pure apart from reading the environment for defaults; used by ``asrpool.cli`` and
``asrpool.local``, and by the component settings classes that declare the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .envflags import env_float, env_int, env_str

_FLAG = "asrpool_flag"

S = TypeVar("S")


@dataclasses.dataclass(frozen=True)
class Flag:
    option: str  # "--num-workers"
    env: str  # "ASRPOOL_NUM_WORKERS": the flag's default when set
    help: str | None = None
    choices: tuple[str, ...] | None = None


def flagged(
    default: Any,
    option: str,
    env: str,
    help: str | None = None,
    *,
    choices: Sequence[str] | None = None,
) -> Any:
    """A dataclass field the command line sets (``--option``, or ``env`` for its default)."""
    flag = Flag(option, env, help, tuple(choices) if choices else None)
    return dataclasses.field(default=default, metadata={_FLAG: flag})


def _flagged_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Flag, type]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        flag = f.metadata.get(_FLAG)
        if flag is not None:
            out.append((f, flag, _scalar(hints[f.name])))
    return out


def _scalar(hint: Any) -> type:
    """int, float or str: the type argparse converts to (``str | None`` is a str)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint not in (int, float, str):
        raise TypeError(f"a flagged setting must be int, float or str, not {hint!r}")
    return typing.cast(type, hint)


_FROM_ENV: dict[type, Callable[[str, Any], Any]] = {int: env_int, float: env_float, str: env_str}


def add_flags(group: argparse._ActionsContainer, cls: type) -> None:
    """One argparse option per flagged field of ``cls``; defaults from the environment."""
    for f, flag, kind in _flagged_fields(cls):
        group.add_argument(
            flag.option,
            dest=f.name,
            type=kind,
            default=_FROM_ENV[kind](flag.env, f.default),
            choices=flag.choices,
            help=flag.help,
        )


def from_flags(cls: type[S], args: argparse.Namespace, **given: Any) -> S:
    """``cls`` from the parsed flags; ``given`` sets the fields that have no flag."""
    values = {f.name: getattr(args, f.name) for f, _, _ in _flagged_fields(cls)}
    return cls(**values, **given)


def to_argv(settings: Any) -> list[str]:
    """The flags that make a child's ``from_flags`` give back ``settings`` (None: unset)."""
    argv: list[str] = []
    for f, flag, _ in _flagged_fields(type(settings)):
        value = getattr(settings, f.name)
        if value is not None:
            argv += [flag.option, str(value)]
    return argv
