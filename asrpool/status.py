"""``asrpool status``: the router's pools and pods as a table, from ``GET /stats``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from .wire import parse_error

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


def print_status(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        resp = httpx.get(args.url.rstrip("/") + "/stats", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"asrpool status: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        _, message = parse_error(
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else resp.text
        )
        print(f"asrpool status: {message} (HTTP {resp.status_code})", file=sys.stderr)
        return 1
    stats = resp.json()
    print(json.dumps(stats, indent=2) if args.json else render_table(stats))
    return 0
