"""The chart's Grafana dashboard read as Grafana would: its queries, parsed as PromQL.

``queries`` lists every query of the dashboard (panel targets and template variables);
``selectors`` parses one with ``promql-parser`` (Prometheus' own grammar, in Rust) and
returns each series selector it reads: the metric name and the labels it matches on.
Grafana's variables are replaced by values of their type first, as Grafana does before
sending a query.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "asrpool" / "dashboards" / "asrpool.json"

# Grafana's built-in interval variables → a duration; template variables → a regex value.
_INTERVALS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    where: str  # the panel's title, or "variable NAME"
    expr: str


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]  # the label names it matches on


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    out: list[dict[str, Any]] = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def queries(dashboard: dict[str, Any]) -> list[Query]:
    out = [Query(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets") or []]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = _LABEL_VALUES.match(query.strip())
            if match is None:
                raise ValueError(f"variable {var['name']}: not label_values(…): {query!r}")
            if match["selector"]:
                out.append(Query(f"variable {var['name']}", match["selector"]))
    return out


def substitute(expr: str) -> str:
    """Grafana's variables as Grafana fills them in: intervals, then `.*` for the others."""
    return _VARIABLE.sub(".*", _INTERVALS.sub("1m", expr))


def selectors(expr: str) -> list[Selector]:
    """The series selectors of ``expr`` (ValueError if it is not valid PromQL), each with the
    labels it must have: those it matches on and those an enclosing ``by (…)`` groups by."""
    found: list[Selector] = []

    def walk(node: Any, grouped: frozenset[str]) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names = frozenset(m.name for m in node.matchers.matchers)
            name = node.name or next(
                (m.value for m in node.matchers.matchers if m.name == "__name__"), None
            )
            if name is None:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            found.append(Selector(name, (names | grouped) - {"__name__"}))
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector, grouped)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs, grouped)
            walk(node.rhs, grouped)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg, grouped)
        elif isinstance(node, promql_parser.AggregateExpr):
            by = node.modifier
            if by is not None and by.type == promql_parser.AggModifierType.By:
                grouped = grouped | frozenset(by.labels)
            walk(node.expr, grouped)
        elif isinstance(
            node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
        ):
            walk(node.expr, grouped)

    walk(promql_parser.parse(substitute(expr)), frozenset())
    return found
