"""`asrpool local`: real workers behind a real router, driven like users drive it."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from asrpool_contract.wire import OPENAI_TRANSCRIPTION_MODELS
from tests.support.procs import LocalPool, start_local
from tests.support.speech import SCORED, word_error_rate

pytestmark = pytest.mark.slow


def transcribe(pool: LocalPool, path: Path, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        data=fields,
        headers=pool.auth,
        timeout=120,
    )


def test_local_pool_prints_its_url_and_a_generated_key(pool: LocalPool):
    assert f"router on {pool.url}" in pool.proc.log()
    assert pool.api_key.startswith("asrp-") and len(pool.api_key) > 20


def test_the_console_shows_one_line_per_request_and_no_health_checks(pool: LocalPool, speech):
    before = len(pool.proc.log().splitlines())
    for _ in range(3):
        assert transcribe(pool, speech["fox"].path).status_code == 200
    time.sleep(4.5)  # two rounds of the router's health checks of both workers
    lines = pool.proc.log().splitlines()[before:]
    assert sum("POST /v1/audio/transcriptions" in line for line in lines) == 3, lines
    assert len(lines) == 3, lines  # nothing else: no probes, no worker access lines
    assert not any(path in line for line in lines for path in ("/readyz", "/healthz")), lines


def test_two_worker_pool_transcribes_below_15_percent_wer(pool: LocalPool, speech):
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        answers = list(ex.map(lambda n: transcribe(pool, speech[n].path), SCORED))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    wer = word_error_rate(
        " ".join(speech[n].text for n in SCORED), " ".join(a.json()["text"] for a in answers)
    )
    print(f"local pool WER over {len(SCORED)} sentences: {wer:.3f}")
    assert wer < 0.15
    stats = httpx.get(f"{pool.url}/stats", headers=pool.auth).json()
    assert stats["total_tasks"] >= len(SCORED) and stats["active_tasks"] == 0
    assert stats["max_concurrent"] == 2  # two workers, one decode at a time each
    assert len(stats["pools"][0]["pods"]) == 2


def test_api_routes_need_the_key_and_health_does_not(pool: LocalPool, speech):
    no_key = httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech["fox"].path.read_bytes())},
    )
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(f"{pool.url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{pool.url}/healthz").status_code == 200
    assert httpx.get(f"{pool.url}/readyz").status_code == 200
    metrics = httpx.get(f"{pool.url}/metrics").text
    assert "asrpool_router_requests_total" in metrics
    # Per pod, as the operator's autoscaler reads them: idle now.
    in_flight = [ln for ln in metrics.splitlines() if ln.startswith("asrpool_router_in_flight{")]
    assert len(in_flight) == 2 and all(ln.endswith(" 0.0") for ln in in_flight), in_flight


def test_workers_refuse_a_direct_call_without_the_routers_token(pool: LocalPool, speech):
    # Any local process can reach a worker's port; only the router's token opens it.
    pods = httpx.get(f"{pool.url}/stats", headers=pool.auth).json()["pools"][0]["pods"]
    assert len(pods) == 2
    for pod in pods:
        direct = httpx.post(
            f"{pod['url']}/v1/audio/transcriptions",
            files={"file": ("a.wav", speech["fox"].path.read_bytes())},
            headers=pool.auth,  # a user's API key is not the router's credential
        )
        assert direct.status_code == 401, direct.text
        assert direct.json()["error"]["code"] == "unauthorized"
        assert httpx.get(f"{pod['url']}/readyz").status_code == 200


def test_router_relays_permanent_errors_without_retrying(pool: LocalPool, tmp_path: Path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 100)
    resp = transcribe(pool, bad)
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "message": resp.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": "file",
        "code": "invalid_audio",
    }
    stats = httpx.get(f"{pool.url}/stats", headers=pool.auth).json()
    assert "permanent" not in stats["retries"]


def test_official_openai_sdk_transcribes_through_the_router(pool: LocalPool, speech):
    client = openai.OpenAI(base_url=f"{pool.url}/v1", api_key=pool.api_key, max_retries=0)
    # The pool, then OpenAI's names for it (issue #10: what a client may send).
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "tiny.en" and set(ids[1:]) == set(OPENAI_TRANSCRIPTION_MODELS)
    with speech["library"].path.open("rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert word_error_rate(speech["library"].text, result.text) < 0.15
    with speech["fox"].path.open("rb") as f:
        srt = client.audio.transcriptions.create(model="tiny.en", file=f, response_format="srt")
    assert "-->" in str(srt)


def test_official_openai_sdk_sees_the_documented_error_codes(pool: LocalPool, speech, tmp_path):
    client = openai.OpenAI(base_url=f"{pool.url}/v1", api_key=pool.api_key, max_retries=0)
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(openai.BadRequestError) as bad_request:
        client.audio.transcriptions.create(model="whisper-1", file=bad.open("rb"))
    assert bad_request.value.code == "invalid_audio"
    with pytest.raises(openai.NotFoundError) as not_found:
        client.audio.transcriptions.create(model="large-v9", file=speech["fox"].path.open("rb"))
    assert not_found.value.code == "model_not_found"
    stranger = openai.OpenAI(base_url=f"{pool.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        stranger.models.list()
    assert denied.value.code == "unauthorized"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asrpool", *args], capture_output=True, text=True, timeout=180
    )


def test_transcribe_command_prints_each_file(pool: LocalPool, speech):
    files = [str(speech["office"].path), str(speech["station"].path)]
    done = run_cli("transcribe", *files, "--url", pool.url, "--api-key", pool.api_key)
    assert done.returncode == 0, done.stderr
    assert f"== {files[0]} ==" in done.stdout and f"== {files[1]} ==" in done.stdout
    assert "office" in done.stdout.lower() and "station" in done.stdout.lower()

    srt = run_cli(
        "transcribe", files[0], "--format", "srt", "--url", pool.url, "--api-key", pool.api_key
    )
    assert srt.returncode == 0 and "-->" in srt.stdout


def test_transcribe_command_reports_failures_plainly(pool: LocalPool, tmp_path: Path):
    missing = run_cli("transcribe", str(tmp_path / "nope.wav"), "--url", pool.url)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk")
    failed = run_cli("transcribe", str(bad), "--url", pool.url, "--api-key", pool.api_key)
    assert failed.returncode == 1 and "not audio" in failed.stderr
    denied = run_cli("transcribe", str(bad), "--url", pool.url, "--api-key", "wrong")
    assert denied.returncode == 1 and "API key" in denied.stderr


def test_ctrl_c_stops_the_router_and_every_worker(tmp_path: Path, speech):
    local = start_local(tmp_path, "--no-auth")
    try:
        stats = httpx.get(f"{local.url}/stats").json()  # open: --no-auth
        worker_urls = [p["url"] for p in stats["pools"][0]["pods"]]
        assert len(worker_urls) == 2
        assert transcribe(LocalPool(local.proc, ""), speech["fox"].path).status_code == 200
        local.proc.signal(signal.SIGINT)
        local.proc.proc.wait(60)
        deadline = time.monotonic() + 30
        alive = worker_urls
        while alive and time.monotonic() < deadline:
            alive = [u for u in alive if _answers(u)]
            time.sleep(0.2)
        assert alive == [], f"workers still running after Ctrl-C: {alive}"
        assert "auth: off" in local.proc.log()
    finally:
        local.proc.stop()


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path):
    local = start_local(tmp_path, "--no-auth")
    try:
        stats = httpx.get(f"{local.url}/stats").json()
        worker_urls = [p["url"] for p in stats["pools"][0]["pods"]]
        local.proc.signal(signal.SIGKILL)  # no chance to clean up
        local.proc.proc.wait(10)
        deadline = time.monotonic() + 30
        alive = worker_urls
        while alive and time.monotonic() < deadline:
            alive = [u for u in alive if _answers(u)]
            time.sleep(0.2)
        assert alive == [], f"orphaned workers: {alive}"
    finally:
        local.proc.stop()


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return True
