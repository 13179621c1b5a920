"""``asrpool status --watch``'s pure part: sparklines and the picture of a /stats/live body."""

from __future__ import annotations

import pytest
from rich.console import Console

from asrpool.cli import build_parser
from asrpool.status import pod_state, render_watch, sparkline


@pytest.mark.parametrize(
    ("values", "width", "expected"),
    [
        ([0, 1, 2, 3, 4, 5, 6, 7], 8, "▁▂▃▄▅▆▇█"),
        ([0, 0, 0], 3, "▁▁▁"),  # nothing happened: the floor, not a gap
        ([None, None, 2.0], 3, "  █"),  # no latency yet: a gap
        ([0, 9, 0, 0, 0, 0], 3, "█▁▁"),  # a spike keeps its height when squeezed
        ([1.0, 2.0], 4, "  ▅█"),  # fewer points than characters: right-aligned
        ([], 3, "   "),
    ],
)
def test_sparklines_scale_to_the_peak_and_keep_gaps(
    values: list[float | None], width: int, expected: str
) -> None:
    assert sparkline(values, width) == expected


def pod(id_: str, **kw: object) -> dict[str, object]:
    return {
        "id": id_, "url": id_, "ready": True, "budget": 2, "max_budget": 2, "in_flight": 0,
        "in_flight_audio_seconds": 0.0, "ejected": False, "ejection_reason": "",
        "ejected_for_s": 0.0, "ejections": 0, "consecutive_failures": 0, "terminating": False,
        **kw,
    }  # fmt: skip


LIVE = {
    "stats": {
        "max_concurrent": 3, "active_tasks": 2, "total_tasks": 41, "failed_tasks": 1,
        "oom_errors": 3, "success_rate": "97.6%", "retries": {"oom": 3}, "queue_depth": 4,
        "pools": [{
            "model": "large-v3", "queue_depth": 4, "max_concurrent": 3, "active_tasks": 2,
            "queue_by_priority": {"batch": 3, "interactive": 1, "realtime": 0},
            "retries": {"oom": 3}, "gave_up": {}, "ejections": 1,
            "pods": [
                pod("http://10.0.0.1:9000", budget=1, in_flight=1, in_flight_audio_seconds=31.5),
                pod("http://10.0.0.2:9000", in_flight=1, in_flight_audio_seconds=12.0),
                pod("http://10.0.0.3:9000", ejected=True, ejection_reason="reset",
                    ejected_for_s=4.0, ejections=1),
                pod("http://10.0.0.4:9000", ready=False),
            ],
        }],
    },
    "sessions": {"open": 2, "max": 256, "max_per_key": 16},
    "ooms_by_pod": {"large-v3": {"http://10.0.0.1:9000": 3}},
    "history": {"pools": {"large-v3": {
        "ago_s": [2.0, 1.0, 0.0], "requests_per_s": [0.0, 1.5, 3.0],
        "p95_s": [None, 0.4, 2.5], "queue_depth": [0, 2, 4], "ooms_per_s": [0.0, 0.0, 0.3],
    }}},
}  # fmt: skip


def text(renderable: object, width: int = 140) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_picture_has_every_pod_its_state_budget_load_and_ooms() -> None:
    out = text(render_watch(LIVE, url="http://router:8000", updated="12:00:01", polls=7))
    assert "http://router:8000 · updated 12:00:01 · poll 7" in out
    assert "requests 41 (1 failed, 97.6% ok) · slots 2/3 in use · 4 queued" in out
    assert "sessions 2/256" in out
    assert "queue realtime 0 · interactive 1 · batch 3" in out  # serving order
    rows = {line.split()[0]: line.split() for line in out.splitlines() if "10.0.0." in line}
    assert rows["10.0.0.1:9000"][1:] == ["ready", "1/2", "1", "32", "3", "0"]
    assert rows["10.0.0.2:9000"][1:] == ["ready", "2/2", "1", "12", "0", "0"]
    assert "ejected (reset, 4s left)" in out
    assert rows["10.0.0.4:9000"][1] == "unreachable"
    assert "requests/s" in out and "▁▅█" in out and "2.5 s" in out  # the last minutes


def test_an_older_router_without_history_still_shows_its_pods() -> None:
    out = text(render_watch({"stats": LIVE["stats"]}, url="u", updated="t", polls=1))
    assert "10.0.0.3:9000" in out and "requests/s" not in out
    assert "sessions ?/?" in out


def test_pod_states_read_as_on_the_page() -> None:
    assert pod_state(pod("a")) == "ready"
    assert pod_state(pod("a", ready=False)) == "unreachable"
    assert pod_state(pod("a", terminating=True)) == "terminating"
    assert pod_state(pod("a", ejected=True, ejection_reason="timeout")) == (
        "ejected (timeout, probing)"
    )


@pytest.mark.parametrize(
    "argv", [["status", "--watch", "--json"], ["status", "--watch", "--interval", "0"]]
)
def test_watch_flags_that_make_no_sense_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_watch_defaults_to_a_redraw_a_second() -> None:
    args = build_parser().parse_args(["status", "--watch"])
    assert args.watch and args.interval == 1.0
