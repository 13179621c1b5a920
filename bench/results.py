"""What a benchmark script writes with ``--json PATH``: the numbers it prints, structured.

One file per run of one script::

    {
      "scenario": "router_overhead",
      "params": {...},                    # the script's arguments
      "rows": [
        {"group": {"clients": 10},        # what the row is measured at (same for every peer)
         "peer": "asrpool",               # who was measured
         "metrics": {"rps": 2400.0, ...}, # one number each, as printed
         "samples": {"latency_s": [...]}} # per-request values, for distributions
      ],
      "baseline": "asrpool",              # the peer the others' ratios are taken against
      "unavailable": [{"peer": "whisperlive", "reason": "..."}],
      "notes": ["..."]
    }

``bench/harness.py`` runs the scripts, repeats them and reads these files back; the scripts
still print their tables as before. Every script imports this module, which makes SIGTERM
(the harness's time limit) unwind the script like Ctrl-C does, so that the servers and peers
it started are stopped by their ``finally`` blocks instead of left running.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@dataclass
class Row:
    group: dict[str, Any]
    peer: str
    metrics: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Results:
    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    baseline: str = "asrpool"
    rows: list[Row] = field(default_factory=list)
    unavailable: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        peer: str,
        group: dict[str, Any],
        metrics: dict[str, float],
        samples: dict[str, list[float]] | None = None,
    ) -> None:
        self.rows.append(Row(dict(group), peer, _finite(metrics), dict(samples or {})))

    def peer_unavailable(self, peer: str, reason: str) -> None:
        self.unavailable.append({"peer": peer, "reason": reason})

    def write(self, path: Path | str | None) -> None:
        """Write to ``path`` (nothing when None), atomically: a killed run leaves no half file."""
        if path is None:
            return
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_text(json.dumps(asdict(self), indent=1, default=_plain))
        os.replace(tmp, path)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    """NaN is not JSON: a metric that could not be measured is left out (shown as —)."""
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile (what the scripts' p50/p99 columns are)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
