"""The dashboard (``GET /dashboard``) in real headless Chromium, over ``asrpool local``.

Two real workers (one decode at a time each: a budget of 1 a pod) behind the router, with
a generated API key. Load is real transcriptions of espeak-ng speech, a bounded number of
them; the page is read back from its DOM (``.pod[data-pod]`` cards, ``data-state``,
``data-in-flight``). The last test kills a worker, which ``asrpool local`` starts again.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import Clip
from tests.support.artifacts import artifact_path
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.procs import LocalPool, start_local

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPool]:
    """``asrpool local --workers 2``, health-checked every 0.5 s (a dead pod shows soon)."""
    # Sharding off: each upload is one request on one pod, so "both pods busy" means two uploads.
    pool = start_local(
        tmp_path_factory.mktemp("dashboard"),
        "--health-interval", "0.5", "--shard-min-seconds", "0",
    )  # fmt: skip
    try:
        yield pool
    finally:
        pool.proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        yield launch(pw)


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


@dataclass
class Dashboard:
    page: Page
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def wait(self, script: str, timeout_s: float, what: str) -> None:
        """Wait until ``script`` (a JS expression) is true, or fail saying what the page shows."""
        try:
            self.page.wait_for_function(f"() => {script}", timeout=timeout_s * 1000)
        except PlaywrightTimeout as exc:
            raise AssertionError(f"no {what} after {timeout_s}s; {self.describe()}") from exc

    def pods(self) -> list[dict[str, str]]:
        return list(
            self.page.evaluate(
                """() => [...document.querySelectorAll('.pod')].map((el) => ({
                  id: el.dataset.pod, state: el.dataset.state, inFlight: el.dataset.inFlight,
                  budget: el.querySelector('[data-field="budget"]').textContent,
                  audio: el.querySelector('[data-field="audio"]').textContent,
                  label: el.querySelector('[data-field="state"]').textContent,
                  detail: el.querySelector('[data-field="detail"]').textContent,
                }))"""
            )
        )

    def describe(self) -> str:
        return (
            f"conn={self.page.inner_text('#conn')!r}, "
            f"error={self.page.inner_text('#error')!r}, pods={self.pods()!r}, "
            f"console={self.console[-10:]!r}"
        )


class OpenDashboard(Protocol):
    def __call__(
        self, url: str, key: str | None, viewport: dict[str, int] | None = None
    ) -> Dashboard: ...


@pytest.fixture
def open_dashboard(browser: Browser) -> Iterator[OpenDashboard]:
    """``open_dashboard(url, key)`` → the page in a fresh browser context, ``key`` typed in
    (None: left as it is)."""
    contexts = []

    def open_(url: str, key: str | None, viewport: dict[str, int] | None = None) -> Dashboard:
        context = browser.new_context(viewport=viewport or {"width": 1100, "height": 900})
        contexts.append(context)
        page = context.new_page()
        dash = Dashboard(page)
        page.on("console", lambda msg: dash.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: dash.console.append(f"pageerror: {err}"))
        page.on("request", lambda request: dash.requests.append(request.url))
        page.goto(url + "/dashboard", timeout=15_000)
        dash.wait("document.body.dataset.ready === 'true'", 10, "page script")
        if key is not None:
            page.fill("#api-key", key)
        return dash

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def lecture(speech: dict[str, Clip], tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """'long' five times over (about two minutes): a decode that lasts several polls of the
    page even on an idle machine, where 'long' alone is done in about a second."""
    path = tmp_path_factory.mktemp("lecture") / "lecture.wav"
    subprocess.run(["sox", *[str(speech["long"].path)] * 5, str(path)], check=True)
    return Clip(path, " ".join([speech["long"].text] * 5))


def burst(pool: LocalPool, clip: Clip, n: int) -> list[concurrent.futures.Future[httpx.Response]]:
    """``n`` transcriptions at once (bounded: each has a 120 s timeout); their futures."""
    ex = concurrent.futures.ThreadPoolExecutor(n)
    futures = [
        ex.submit(
            httpx.post,
            f"{pool.url}/v1/audio/transcriptions",
            files={"file": (clip.path.name, clip.path.read_bytes())},
            headers=pool.auth,
            timeout=120,
        )
        for _ in range(n)
    ]
    ex.shutdown(wait=False)
    return futures


def live(pool: LocalPool) -> dict[str, Any]:
    resp = httpx.get(f"{pool.url}/stats/live", headers=pool.auth, timeout=10)
    resp.raise_for_status()
    return dict(resp.json())


BOTH_READY = (
    "document.querySelectorAll('.pod[data-state=\"ready\"]').length === 2"
    " && [...document.querySelectorAll('.pod [data-field=\"budget\"]')]"
    ".every((el) => el.textContent === '1 of 1')"
)


def test_stats_live_is_stats_plus_sessions_and_history_behind_the_same_key(
    local: LocalPool,
) -> None:
    assert httpx.get(f"{local.url}/stats/live").status_code == 401
    wrong = httpx.get(f"{local.url}/stats/live", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    # The router samples once a second; a point needs two samples.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = live(local)
        if any(s["ago_s"] for s in body["history"]["pools"].values()):
            break
        time.sleep(0.2)
    stats = httpx.get(f"{local.url}/stats", headers=local.auth).json()
    assert body["stats"].keys() == stats.keys()
    (pool,) = body["stats"]["pools"]
    assert [p["id"] for p in pool["pods"]] == [p["id"] for p in stats["pools"][0]["pods"]]
    assert body["sessions"] == {"open": 0, "max": 256, "max_per_key": 16}
    series = body["history"]["pools"][pool["model"]]
    assert len(series["ago_s"]) >= 1 and series["ago_s"][-1] == 0.0
    assert set(series) >= {"requests_per_s", "p50_s", "p95_s", "queue_depth", "ooms_per_s"}
    # The page and everything it loads come from the router, without the key.
    for path in ("/dashboard", "/static/dashboard.js", "/static/dashboard-view.js"):
        assert httpx.get(local.url + path).status_code == 200, path


def test_a_wrong_key_shows_a_clear_message_and_the_right_one_shows_the_pool(
    local: LocalPool, open_dashboard: OpenDashboard
) -> None:
    dash = open_dashboard(local.url, "not-the-key")
    dash.wait("!document.querySelector('#error').hidden", 10, "error message")
    error = dash.page.inner_text("#error")
    assert "Missing or wrong API key" in error and "Enter the router's API key" in error, error
    assert dash.page.get_attribute("#conn", "data-state") == "error"
    assert dash.pods() == []  # nothing shown without the key

    dash.page.fill("#api-key", local.api_key)
    dash.wait(BOTH_READY, 10, "two ready pods with a budget of 1")
    assert dash.page.is_hidden("#error")
    assert dash.page.get_attribute("#conn", "data-state") == "live"
    # The key is the recorder page's too: entered once, both pages have it.
    dash.page.click("#to-recorder")
    dash.page.wait_for_url(local.url + "/")
    assert dash.page.input_value("#api-key") == local.api_key
    dash.page.click("#to-dashboard")
    dash.page.wait_for_url(local.url + "/dashboard")
    dash.wait(BOTH_READY, 10, "the pool again, with the remembered key")


def test_pods_show_their_load_while_requests_run_and_zero_after(
    local: LocalPool, open_dashboard: OpenDashboard, lecture: Clip
) -> None:
    dash = open_dashboard(local.url, local.api_key)
    dash.wait(BOTH_READY, 15, "two ready pods with a budget of 1")
    before = live(local)["stats"]["total_tasks"]
    # Four long transcriptions on two slots: both pods busy, two requests queued.
    futures = burst(local, lecture, 4)
    dash.wait(
        "[...document.querySelectorAll('.pod')].every((el) => el.dataset.inFlight === '1')",
        60,
        "both pods with a request in flight",
    )
    busy = dash.pods()
    assert all(p["audio"] != "0 s" for p in busy), busy  # audio seconds in flight
    dash.page.screenshot(path=str(artifact_path("dashboard-under-load.png")), full_page=True)
    assert dash.page.inner_text('#summary [data-field="slots"]') == "2 / 2"
    dash.wait(
        "Number(document.querySelector('#summary [data-field=\"queued\"]').textContent) > 0",
        10,
        "requests queued",
    )
    answers = [f.result(timeout=180) for f in futures]
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    dash.wait(
        "[...document.querySelectorAll('.pod')].every((el) => el.dataset.inFlight === '0')"
        " && document.querySelector('#summary [data-field=\"slots\"]').textContent === '0 / 2'"
        " && document.querySelector('#summary [data-field=\"queued\"]').textContent === '0'",
        10,
        "every count back to 0",
    )
    assert all(p["audio"] == "0 s" for p in dash.pods())
    requests = dash.page.inner_text('#summary [data-field="requests"]')
    assert int(requests) == before + 4
    # The plots drew the burst: requests/s and latency have lines, from the router's history.
    series = live(local)["history"]["pools"]
    (points,) = series.values()
    assert max(points["requests_per_s"]) > 0 and max(points["queue_depth"]) >= 1
    assert any(v is not None and v > 0 for v in points["p95_s"])
    for plot in ("requests", "latency", "queue"):
        # A line, not a dot: latency needs a second point after the last request (≤ 2 s).
        dash.wait(
            f"(document.querySelector('[data-plot=\"{plot}\"] path.line-a')"
            ".getAttribute('d') || '').includes('L')",
            5,
            f"a {plot} line",
        )

    # Page, scripts and styles all came from the router: no CDN, nothing outside.
    assert dash.requests and all(u.startswith(local.url + "/") for u in dash.requests)
    assert not [c for c in dash.console if c.startswith("pageerror")], dash.console
    shot = artifact_path("dashboard.png")
    dash.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_on_a_phone_everything_fits_the_width(
    local: LocalPool, open_dashboard: OpenDashboard
) -> None:
    dash = open_dashboard(local.url, local.api_key, {"width": 390, "height": 844})
    dash.wait(BOTH_READY, 15, "two ready pods")
    # Nothing wider than the screen: no sideways scrolling.
    assert dash.page.evaluate("document.documentElement.scrollWidth") <= 390
    shot = artifact_path("dashboard-phone.png")
    dash.page.screenshot(path=str(shot), full_page=True)


def test_a_killed_worker_shows_as_unreachable_until_it_is_back(
    local: LocalPool, open_dashboard: OpenDashboard, lecture: Clip
) -> None:
    dash = open_dashboard(local.url, local.api_key)
    dash.wait(BOTH_READY, 15, "two ready pods")
    victim = dash.pods()[0]["id"]
    futures = burst(local, lecture, 2)
    dash.wait(
        "[...document.querySelectorAll('.pod')].every((el) => el.dataset.inFlight === '1')",
        60,
        "both pods busy",
    )
    os.kill(local.worker_pid(victim), signal.SIGKILL)
    card = f".pod[data-pod={json.dumps(victim)}]"
    dash.wait(
        f"['unready', 'ejected'].includes(document.querySelector('{card}').dataset.state)",
        15,
        "the killed pod shown out of rotation",
    )
    killed = next(p for p in dash.pods() if p["id"] == victim)
    # Out by its failed health check or by its failed request, whichever came first; the
    # card's words are the ones for the state it shows.
    assert (killed["state"], killed["label"]) in {
        ("unready", "unreachable"),
        ("ejected", "ejected"),
    }, killed
    other = next(p for p in dash.pods() if p["id"] != victim)
    assert other["state"] == "ready", other
    shot = artifact_path("dashboard-killed-worker.png")
    dash.page.screenshot(path=str(shot), full_page=True)
    # Its request went to the other pod: no client saw the failure.
    answers = [f.result(timeout=180) for f in futures]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    # `asrpool local` starts it again; the card turns ready (the module's pool is whole again).
    dash.wait(f"document.querySelector('{card}').dataset.state === 'ready'", 90, "pod back")


def test_the_pages_pure_helpers_read_the_data_as_people_would(
    local: LocalPool, open_dashboard: OpenDashboard, tmp_path: Path
) -> None:
    """dashboard-view.js, the page's pure part, run in the browser itself."""
    dash = open_dashboard(local.url, None)
    got = dash.page.evaluate(
        """async () => {
          const v = await import('./static/dashboard-view.js');
          const pod = {ready: true, ejected: false, terminating: false, budget: 2,
                       max_budget: 4, in_flight: 1, ejections: 0, consecutive_failures: 0};
          return {
            ready: v.podState(pod),
            ejected: v.podState({...pod, ejected: true, ejection_reason: 'reset',
                                 ejected_for_s: 4.2, ejections: 2}),
            probing: v.podState({...pod, ejected: true, ejection_reason: 'timeout',
                                 ejected_for_s: 0, ejections: 1}).detail,
            unready: v.podState({...pod, ready: false}).state,
            bar: v.budgetBar(pod),
            queue: v.queueText({batch: 5, interactive: 2}),
            counts: v.countsText({reset: 1, oom: 3, timeout: 0}),
            none: v.countsText({}),
            numbers: [0, 0.4242, 3.14, 12.6, 1234, 56789].map(v.formatNumber),
            seconds: [0.3404, 2.1, null].map(v.formatSeconds),
            plot: v.plotPaths([3, 2, 1, 0], [[0, null, 2, 4]], {width: 300, height: 60,
                                                                spanS: 3}),
            name: v.podName('http://127.0.0.1:8001'),
            e401: v.pollError(401, {error: {message: 'Missing or wrong API key.'}}),
            e0: v.pollError(0, null),
          };
        }"""
    )
    assert got["ready"]["state"] == "ready"
    assert got["ejected"]["state"] == "ejected"
    assert "after reset; back in 4 s (ejected 2 time(s))" in got["ejected"]["detail"]
    assert "probing with one request" in got["probing"]
    assert got["unready"] == "unready"
    assert got["bar"] == {"budget": 50, "inUse": 25, "cut": True}
    assert got["queue"] == "realtime 0 · interactive 2 · batch 5"  # serving order, all classes
    assert got["counts"] == "oom 3 · reset 1" and got["none"] == "none"
    assert got["numbers"] == ["0", "0.42", "3.1", "13", "1.2k", "57k"]
    assert got["seconds"] == ["340 ms", "2.1 s", "–"]
    # A null breaks the line: a dot at 0 (3 s ago), then a line from 2 s ago to the top right.
    assert got["plot"] == {"paths": ["M0.0 60.0h0M200.0 30.0L300.0 0.0"], "top": 4}
    assert got["name"] == "127.0.0.1:8001"
    assert got["e401"].startswith("Missing or wrong API key.") and "above" in got["e401"]
    assert "Cannot reach the router" in got["e0"]
