"""docs/BENCHMARKS.md and its plots, from what bench/harness.py collected.

Input: per scenario, the runs (one merged ``bench/results.py`` document per repeat) and what
went wrong. Aggregation, per (group, peer) row and metric: the median and the p99 over the
runs (nearest rank: with 3 runs the p99 is the worst run); a ratio to the scenario's
baseline peer is taken inside each run (same run, same machine state) and its median shown.
Per-request samples of every run are pooled for the distribution plots.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.results import quantile


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    fmt: str = "{:.2f}"
    better: str = "lower"  # or "higher": how the ratio column reads


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    about: str
    commands: dict[str, list[list[str]]]  # profile → [script and arguments, …]
    columns: tuple[Column, ...]
    ratio: tuple[str, ...] = ()  # metrics whose ratio to the baseline is shown
    axis: str | None = None  # a numeric group key: scaling curves along it
    curves: tuple[str, ...] = ()  # metrics plotted along the axis
    simulated: bool = False
    timeout_s: dict[str, int] = field(default_factory=lambda: {"smoke": 900, "full": 5400})


@dataclass
class Outcome:
    scenario: Scenario
    runs: list[dict[str, Any]] = field(default_factory=list)  # merged results, one a repeat
    failures: list[str] = field(default_factory=list)  # "run 2, script.py: why"
    seconds: float = 0.0
    load_before: float = math.nan
    load_after: float = math.nan


def key_of(group: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(v)) for k, v in group.items())


@dataclass
class Aggregate:
    group: dict[str, Any]
    peer: str
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ratios: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def median(self, metric: str) -> float:
        vals = self.values.get(metric, [])
        return statistics.median(vals) if vals else math.nan

    def p99(self, metric: str) -> float:
        return quantile(self.values.get(metric, []), 0.99)


def aggregate(outcome: Outcome) -> list[Aggregate]:
    rows: dict[tuple[Any, ...], Aggregate] = {}
    for run in outcome.runs:
        baseline = run.get("baseline", "asrpool")
        base = {key_of(r["group"]): r for r in run["rows"] if r["peer"] == baseline}
        for r in run["rows"]:
            k = (key_of(r["group"]), r["peer"])
            agg = rows.setdefault(k, Aggregate(dict(r["group"]), r["peer"]))
            for metric, value in r["metrics"].items():
                agg.values[metric].append(float(value))
            for name, values in r.get("samples", {}).items():
                agg.samples[name] += [float(v) for v in values]
            b = base.get(key_of(r["group"]))
            if b is None:
                continue
            for metric in outcome.scenario.ratio:
                mine, theirs = r["metrics"].get(metric), b["metrics"].get(metric)
                # A ratio to (nearly) nothing, or across zero, says nothing.
                if mine is not None and theirs and float(theirs) > 1e-2 and float(mine) >= 0:
                    agg.ratios[metric].append(float(mine) / float(theirs))
    groups = list(dict.fromkeys(k[0] for k in rows))
    peers = list(dict.fromkeys(k[1] for k in rows))
    ordered = sorted(rows, key=lambda k: (groups.index(k[0]), peers.index(k[1])))
    return [rows[k] for k in ordered]


def unavailable(outcome: Outcome) -> dict[str, str]:
    seen: dict[str, str] = {}
    for run in outcome.runs:
        for u in run.get("unavailable", []):
            seen.setdefault(u["peer"], u["reason"])
    return seen


def _cell(agg: Aggregate, col: Column, runs: int) -> str:
    vals = agg.values.get(col.metric, [])
    if not vals:
        return "—"
    med = col.fmt.format(agg.median(col.metric))
    if runs > 1 and len(vals) > 1:
        return f"{med} [{col.fmt.format(agg.p99(col.metric))}]"
    return med


def table(outcome: Outcome, aggs: list[Aggregate]) -> list[str]:
    sc = outcome.scenario
    runs = len(outcome.runs)
    group_keys = list(dict.fromkeys(k for a in aggs for k in a.group))
    baseline = outcome.runs[0].get("baseline", "asrpool") if outcome.runs else "asrpool"
    ratio_cols = [c for c in sc.columns if c.metric in sc.ratio]
    head = [*group_keys, "peer", *(c.label for c in sc.columns)]
    head += [f"{c.label} ÷ {baseline}" for c in ratio_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    previous: list[str] = []
    for agg in aggs:
        group = [str(agg.group.get(k, "")) for k in group_keys]
        shown = [g if previous[: i + 1] != group[: i + 1] else "" for i, g in enumerate(group)]
        previous = group
        cells = [*shown, agg.peer, *(_cell(agg, c, runs) for c in sc.columns)]
        for c in ratio_cols:
            ratios = agg.ratios.get(c.metric, [])
            if agg.peer == baseline or not ratios:
                cells.append("")
            else:
                cells.append(f"×{statistics.median(ratios):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- plots -------------------------------------------------------------------------------


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(agg: Aggregate, keys: Sequence[str]) -> str:
    rest = ", ".join(f"{k} {agg.group[k]}" for k in keys if k in agg.group)
    return f"{agg.peer} ({rest})" if rest else agg.peer


def plots(outcome: Outcome, aggs: list[Aggregate], out_dir: Path, profile: str) -> list[Path]:
    """PNGs for one scenario: distributions, success rates, scaling curves."""
    if not aggs:
        return []
    plt = _plt()
    sc = outcome.scenario
    tag = " (SIMULATED GPU pool)" if sc.simulated and "SIMULATED" not in sc.title else ""
    tag += " — smoke run" if profile == "smoke" else ""
    made: list[Path] = []
    group_keys = list(dict.fromkeys(k for a in aggs for k in a.group))

    sample_names = sorted({n for a in aggs for n, v in a.samples.items() if v})
    groups = list(dict.fromkeys(key_of(a.group) for a in aggs))
    for name in sample_names:
        cols = min(4, len(groups))
        rows = math.ceil(len(groups) / cols)
        fig, axes = plt.subplots(
            rows, cols, figsize=(max(8.0, 4.2 * cols + 1), 3.4 * rows + 0.8), squeeze=False
        )
        positive = [v for a in aggs for v in a.samples.get(name, []) if v > 0]
        log = bool(positive) and max(positive) / max(min(positive), 1e-9) > 100
        for ax, group in zip(axes.flat, groups, strict=False):
            for agg in (a for a in aggs if key_of(a.group) == group):
                values = sorted(agg.samples.get(name, []))
                if not values:
                    continue
                # Failures never arrive: the curve tops out at the success rate.
                answered = agg.median("success_pct") / 100 if "success_pct" in agg.values else 1
                ys = [answered * (i + 1) / len(values) for i in range(len(values))]
                ax.step([values[0], *values], [0.0, *ys], where="post", label=agg.peer)
            ax.set_title(", ".join(f"{k} {v}" for k, v in group) or sc.title, fontsize=8)
            ax.set_ylim(0, 1.02)
            if log:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="lower right")
        for ax in list(axes.flat)[len(groups) :]:
            ax.set_visible(False)
        fig.supxlabel(name.replace("_", " "), fontsize=9)
        fig.supylabel("fraction within x (failures never arrive)", fontsize=9)
        fig.suptitle(f"{sc.title}: {name.replace('_', ' ')}, every run pooled{tag}", fontsize=10)
        made.append(_save(fig, out_dir / f"{sc.name}-{name}.png"))

    if any("success_pct" in a.values for a in aggs):
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [_label(a, group_keys) for a in aggs if "success_pct" in a.values]
        values = [a.median("success_pct") for a in aggs if "success_pct" in a.values]
        ax.barh(range(len(values)), values, color="tab:green")
        ax.set_yticks(range(len(values)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 105)
        ax.set_xlabel("success % (median over runs)")
        ax.set_title(f"{sc.title}: success rate{tag}", fontsize=9, wrap=True)
        for i, v in enumerate(values):
            ax.text(min(v, 100) + 1, i, f"{v:.0f}%", va="center", fontsize=7)
        made.append(_save(fig, out_dir / f"{sc.name}-success.png"))

    axis = sc.axis
    if axis and sc.curves:
        fig, axes = plt.subplots(1, len(sc.curves), figsize=(5 * len(sc.curves), 4), squeeze=False)
        others = [k for k in group_keys if k != axis]
        lines: dict[str, list[Aggregate]] = defaultdict(list)
        for agg in aggs:
            if axis in agg.group:
                lines[_label(agg, others)].append(agg)
        for ax, metric in zip(axes[0], sc.curves, strict=True):
            for label, members in lines.items():
                members.sort(key=lambda a: float(a.group[axis]))
                xs = [float(a.group[axis]) for a in members if metric in a.values]
                ys = [a.median(metric) for a in members if metric in a.values]
                if xs:
                    ax.plot(xs, ys, marker="o", label=label)
            col = next((c for c in sc.columns if c.metric == metric), None)
            xs_all = [float(a.group[axis]) for a in aggs if axis in a.group]
            if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10:
                ax.set_xscale("log")
            ax.set_xlabel(axis)
            ax.set_ylabel(col.label if col else metric)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        fig.suptitle(f"{sc.title}: scaling along {axis}{tag}", fontsize=10)
        made.append(_save(fig, out_dir / f"{sc.name}-scaling.png"))
    return made


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


# --- the document ------------------------------------------------------------------------


def markdown(
    outcomes: list[Outcome],
    machine: dict[str, str],
    profile: str,
    repeat: int,
    out_doc: Path,
    plot_dir: Path,
    command: str,
    total_s: float,
) -> str:
    lines = ["# Benchmarks", ""]
    if profile == "smoke":
        lines += [
            "> **SMOKE RUN.** `make bench-smoke` (`--profile smoke`): every scenario in a tiny",
            "> configuration, to prove that the harness, the peers and the plots work. These",
            "> numbers are **not** benchmarks: too few requests, too short, one run. `make bench`",
            "> (`--profile full`) writes the real ones.",
            "",
        ]
    lines += [
        f"Written by `{command}` (bench/harness.py) in {total_s / 60:.1f} minutes: profile "
        f"`{profile}`, {repeat} run(s) of every scenario. Never part of `make test`.",
        "",
        "How to read the tables: each cell is the **median over the runs** and, in brackets",
        "when there was more than one run, the **p99 over the runs** (with few runs, the worst",
        "one). A metric that is itself a p99 is the p99 of that run's requests. `÷ peer`",
        "columns are ratios to the baseline peer **measured in the same run**, their median",
        "over the runs. Distributions pool every request of every run. Rows labelled",
        "SIMULATED ran on simulated GPU pods (`bench/sim_gpu.py`), never on a GPU.",
        "",
        "## The machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    lines.append("")
    lines += ["## Scenarios", ""]
    for o in outcomes:
        status = "ok" if o.runs and not o.failures else ("FAILED" if not o.runs else "partly")
        lines.append(f"- [{o.scenario.title}](#{_anchor(o.scenario.title)}): {status}, "
                     f"{o.seconds:.0f} s")  # fmt: skip
    lines.append("")
    for o in outcomes:
        sc = o.scenario
        lines += [f"## {sc.title}", "", sc.about, ""]
        cmds = "; ".join(" ".join(c) for c in sc.commands[profile])
        lines += [
            f"Ran: `{cmds}` ({len(o.runs)} run(s), {o.seconds:.0f} s, load average "
            f"{o.load_before:.1f} before, {o.load_after:.1f} after).",
            "",
        ]
        for failure in o.failures:
            lines += [f"> **Failed**: {failure}", ""]
        missing = unavailable(o)
        for peer, reason in missing.items():
            lines += [f"> **Peer not measured: {peer}**: {reason}", ""]
        if not o.runs:
            lines += ["No numbers: the scenario did not produce any.", ""]
            continue
        aggs = aggregate(o)
        if aggs:
            lines += table(o, aggs)
            lines.append("")
        notes = list(dict.fromkeys(n for run in o.runs for n in run.get("notes", [])))
        lines += [f"- {n}" for n in notes]
        if notes:
            lines.append("")
        for png in plots(o, aggs, plot_dir, profile):
            rel = png.relative_to(out_doc.parent) if png.is_relative_to(out_doc.parent) else png
            lines.append(f"![{png.stem}]({rel.as_posix()})")
        lines.append("")
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    keep = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return keep.replace(" ", "-")
