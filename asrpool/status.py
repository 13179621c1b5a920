"""``asrpool status``: the router's pools and pods, once as a table or live in the terminal.

Once (``GET /stats``): ``render_table``. With ``--watch`` (``GET /stats/live``, what the
dashboard page polls): ``render_watch`` builds the same picture as the page with rich, the
last minutes as sparklines, redrawn in place every ``--interval`` seconds until Ctrl-C.
The render functions are pure (data in, text or a rich renderable out); ``print_status`` and
``watch_status`` do the HTTP and the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from asrpool_contract.wire import parse_error

_COLUMNS = ("POOL", "POD", "READY", "BUDGET", "IN FLIGHT", "AUDIO S", "EJECTED")


def render_table(stats: dict[str, Any]) -> str:
    """The /stats body as text: a summary line, then one row per pod."""
    lines = [
        f"requests: {stats['total_tasks']} total, {stats['failed_tasks']} failed, "
        f"success {stats['success_rate']}, {stats['oom_errors']} OOM answers; "
        f"{stats['active_tasks']}/{stats['max_concurrent']} slots busy, "
        f"{stats.get('queue_depth', 0)} queued"
    ]
    rows = [_COLUMNS]
    for pool in stats.get("pools", []):
        for pod in pool["pods"]:
            rows.append(
                (
                    pool["model"],
                    pod["id"],
                    "yes" if pod["ready"] else "no",
                    f"{pod['budget']}/{pod['max_budget']}",
                    str(pod["in_flight"]),
                    str(pod["in_flight_audio_seconds"]),
                    _ejected(pod),
                )
            )
        if not pool["pods"]:
            rows.append((pool["model"], "(no pods)", "", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    for pool in stats.get("pools", []):
        lines.append(
            f"pool {pool['model']}: queue {pool['queue_depth']} {pool['queue_by_priority']}, "
            f"{pool.get('ejections', 0)} ejections"
        )
    return "\n".join(lines)


def _ejected(pod: dict[str, Any]) -> str:
    """``no``, or why and for how much longer (older routers say only yes/no)."""
    if not pod["ejected"]:
        return "no"
    reason = pod.get("ejection_reason") or ""
    left = pod.get("ejected_for_s")
    detail = ", ".join(x for x in (reason, f"{left:g}s left" if left else "probing") if x)
    return f"yes ({detail})" if "ejection_reason" in pod else "yes"


def pod_state(pod: dict[str, Any]) -> str:
    """One word or a few, as the dashboard page says it: ready, unreachable, ejected (…)."""
    if pod["ejected"]:
        return "ejected" + _ejected(pod).removeprefix("yes")  # "ejected (reset, 4s left)"
    if pod.get("terminating"):
        return "terminating"
    return "ready" if pod["ready"] else "unreachable"


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int) -> str:
    """``values`` in ``width`` characters, the newest on the right; each character the
    highest value of its share (so a spike never vanishes), a gap where there is none."""
    if width <= 0 or not values:
        return " " * max(0, width)
    groups: list[Sequence[float | None]]
    if len(values) <= width:  # a character a point, right-aligned: a short history is recent
        groups = [[None]] * (width - len(values)) + [[v] for v in values]
    else:
        n = len(values)
        groups = [values[i * n // width : (i + 1) * n // width] for i in range(width)]
    peaks = [max((v for v in g if v is not None), default=None) for g in groups]
    top = max((v for v in peaks if v is not None), default=0.0)
    chars = []
    for v in peaks:
        if v is None:
            chars.append(" ")
        elif top <= 0:
            chars.append(_BARS[0])
        else:
            chars.append(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))])
    return "".join(chars)


def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    if abs(v) >= 10 or float(v).is_integer():
        return f"{v:.0f}{unit}"
    return f"{v:.2g}{unit}" if abs(v) < 1 else f"{v:.1f}{unit}"


def _seconds(v: float | None) -> str:
    return "–" if v is None else (f"{v * 1000:.0f} ms" if v < 1 else _num(v, " s"))


def _counts(counts: dict[str, int] | None) -> str:
    items = sorted(((k, n) for k, n in (counts or {}).items() if n), key=lambda kn: -kn[1])
    return " · ".join(f"{k.replace('_', ' ')} {n}" for k, n in items) or "none"


_PRIORITIES = ("realtime", "interactive", "batch")  # the order the queue serves them


def render_watch(
    live: dict[str, Any], *, url: str, updated: str, polls: int, spark_width: int = 30
) -> RenderableType:
    """The ``/stats/live`` body as the dashboard page shows it: totals, then per pool its
    queue, retries, the last minutes as sparklines, and a row per pod."""
    stats = live["stats"]
    sessions = live.get("sessions") or {}
    history = (live.get("history") or {}).get("pools") or {}
    ooms_by_pod = live.get("ooms_by_pod") or {}
    parts: list[RenderableType] = [
        Text.assemble(
            ("asrpool ", "bold"),
            f"{url} · updated {updated} · poll {polls}",
            ("   Ctrl-C quits", "dim"),
        ),
        Text(
            f"requests {stats['total_tasks']} ({stats['failed_tasks']} failed, "
            f"{stats['success_rate']} ok) · slots {stats['active_tasks']}/"
            f"{stats['max_concurrent']} in use · {stats.get('queue_depth', 0)} queued · "
            f"{stats['oom_errors']} OOM answers · sessions {sessions.get('open', '?')}/"
            f"{sessions.get('max', '?')}"
        ),
    ]
    for pool in stats.get("pools", []):
        queue = pool.get("queue_by_priority") or {}
        parts.append(Text(""))
        parts.append(
            Text.assemble(
                (f"pool {pool['model']}", "bold"),
                f"  queue {' · '.join(f'{p} {queue.get(p, 0)}' for p in _PRIORITIES)}"
                f"  retries {_counts(pool.get('retries'))}  gave up {_counts(pool.get('gave_up'))}"
                f"  ejections {pool.get('ejections', 0)}",
            )
        )
        series = history.get(pool["model"])
        if series and series.get("ago_s"):
            parts.append(_sparklines(series, spark_width))
        parts.append(_pod_table(pool, ooms_by_pod.get(pool["model"], {})))
    if not stats.get("pools"):
        parts.append(Text("no pools yet: the router has found no pod", style="dim"))
    return Group(*parts)


def _sparklines(series: dict[str, Any], width: int) -> Table:
    grid = Table.grid(padding=(0, 1))
    for _ in range(6):
        grid.add_column()

    def last(key: str) -> float | None:
        values = series.get(key) or [None]
        return values[-1]

    span = series["ago_s"][0] if series["ago_s"] else 0
    rows = [
        ("requests/s", "requests_per_s", _num(last("requests_per_s"))),
        ("p95 latency", "p95_s", _seconds(last("p95_s"))),
        ("queue", "queue_depth", _num(last("queue_depth"))),
        ("OOMs/s", "ooms_per_s", _num(last("ooms_per_s"))),
    ]
    cells = [
        (Text(label, style="dim"), Text(sparkline(series.get(key) or [], width), "green"), now)
        for label, key, now in rows
    ]
    for left, right in ((cells[0], cells[1]), (cells[2], cells[3])):
        grid.add_row(*left, *right)
    grid.caption = f"last {span / 60:.0f} min" if span >= 60 else f"last {span:.0f} s"
    return grid


def _pod_table(pool: dict[str, Any], ooms: dict[str, int]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold dim")
    for name in ("POD", "STATE", "BUDGET", "IN FLIGHT", "AUDIO S", "OOMS", "EJECTIONS"):
        table.add_column(name, no_wrap=name != "STATE")
    for pod in pool["pods"]:
        state = pod_state(pod)
        style = "green" if state == "ready" else ("yellow" if state == "terminating" else "red")
        table.add_row(
            pod["id"].removeprefix("http://").removeprefix("https://"),
            Text(state, style=style),
            f"{pod['budget']}/{pod['max_budget']}",
            str(pod["in_flight"]),
            _num(pod["in_flight_audio_seconds"]),
            str(ooms.get(pod["id"], 0)),
            str(pod.get("ejections", 0)),
        )
    if not pool["pods"]:
        table.add_row("(no pods)", "", "", "", "", "", "")
    return table


class StatusError(Exception):
    """The router answered, but not with the data: its message (and no point retrying)."""


def _get(client: httpx.Client, url: str, path: str) -> dict[str, Any]:
    resp = client.get(url.rstrip("/") + path)
    if resp.status_code != 200:
        _, message = parse_error(
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else resp.text
        )
        raise StatusError(f"{message} (HTTP {resp.status_code})")
    return dict(resp.json())


def _client(args: argparse.Namespace) -> httpx.Client:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    return httpx.Client(headers=headers, timeout=10)


def print_status(args: argparse.Namespace) -> int:
    if args.watch:
        return watch_status(args)
    try:
        with _client(args) as client:
            stats = _get(client, args.url, "/stats")
    except httpx.HTTPError as exc:
        print(f"asrpool status: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    except StatusError as exc:
        print(f"asrpool status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(stats, indent=2) if args.json else render_table(stats))
    return 0


def watch_status(
    args: argparse.Namespace,
    console: Console | None = None,
    clock: Callable[[], str] = lambda: time.strftime("%H:%M:%S"),
) -> int:
    """Redraw the picture every ``args.interval`` s until Ctrl-C (exit 0). A router that
    does not answer is said so in place and tried again; a refused key ends it (exit 1)."""
    console = console or Console()
    # httpx logs every request at INFO: above a picture redrawn each second, a scrolling mess.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    polls = 0
    try:
        with _client(args) as client, Live(console=console, auto_refresh=False) as live:
            while True:
                polls += 1
                try:
                    body = _live_body(client, args.url)
                    live.update(
                        render_watch(body, url=args.url, updated=clock(), polls=polls),
                        refresh=True,
                    )
                except httpx.HTTPError as exc:
                    live.update(
                        Text(f"asrpool status: cannot reach {args.url} ({exc}); retrying", "red"),
                        refresh=True,
                    )
                time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    except StatusError as exc:
        print(f"asrpool status: {exc}", file=sys.stderr)
        return 1


def _live_body(client: httpx.Client, url: str) -> dict[str, Any]:
    """``/stats/live``; from a router older than it, ``/stats`` alone (no sparklines)."""
    try:
        return _get(client, url, "/stats/live")
    except StatusError as exc:
        if "(HTTP 404)" not in str(exc):
            raise
        return {"stats": _get(client, url, "/stats")}
