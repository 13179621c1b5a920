"""The worker, as a real process with the bundled tiny.en model, over real HTTP."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Clip
from tests.support.audio_formats import CONTAINERS, reencode
from tests.support.procs import ONE_DECODE_FITS, ServerProcess, worker
from tests.support.speech import SCORED, word_error_rate
from tests.support.subtitles import cue_times

pytestmark = pytest.mark.slow


def post(
    url: str, path: Path | None, timeout: float = 120, content: bytes | None = None, **fields: str
) -> httpx.Response:
    data = content if content is not None else (path.read_bytes() if path else b"")
    name = path.name if path else "audio.wav"
    return httpx.post(
        f"{url}/v1/audio/transcriptions", files={"file": (name, data)}, data=fields, timeout=timeout
    )


def assert_openai_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code
    assert err["message"]
    return err


def test_transcribes_synthesized_speech_below_15_percent_wer(worker_proc: ServerProcess, speech):
    refs, hyps = [], []
    for name in SCORED:
        clip: Clip = speech[name]
        resp = post(worker_proc.url, clip.path)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["usage"]["type"] == "duration" and body["usage"]["seconds"] >= 1
        refs.append(clip.text)
        hyps.append(body["text"])
    wer = word_error_rate(" ".join(refs), " ".join(hyps))
    print(f"worker WER over {len(refs)} sentences: {wer:.3f}")
    assert wer < 0.15, hyps


def test_every_response_format_parses(worker_proc: ServerProcess, speech):
    clip = speech["long"].path
    text = post(worker_proc.url, clip, response_format="text")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert len(text.text.split()) > 20

    for fmt in ("srt", "vtt"):
        resp = post(worker_proc.url, clip, response_format=fmt)
        assert resp.status_code == 200, resp.text
        if fmt == "vtt":
            assert resp.text.startswith("WEBVTT")
        times = cue_times(resp.text)
        assert len(times) >= 2, resp.text
        for start, end in times:
            assert start < end
        starts = [s for s, _ in times]
        assert starts == sorted(starts) and len(set(starts)) == len(starts)

    verbose = post(
        worker_proc.url,
        clip,
        response_format="verbose_json",
        **{"timestamp_granularities[]": "word"},
    ).json()
    assert verbose["language"] == "english" and verbose["duration"] > 10
    assert verbose["segments"] and all(s["start"] < s["end"] for s in verbose["segments"])
    words = verbose["words"]
    assert len(words) > 20
    assert all(w["start"] <= w["end"] for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)

    plain = post(worker_proc.url, clip, response_format="json").json()
    assert set(plain) == {"text", "usage"}


@pytest.mark.parametrize("suffix", sorted(CONTAINERS))
def test_decodes_the_containers_clients_upload(worker_proc: ServerProcess, speech, suffix: str):
    encoded = reencode(speech["fox"].path, suffix)
    resp = post(worker_proc.url, encoded)
    assert resp.status_code == 200, resp.text
    assert word_error_rate(speech["fox"].text, resp.json()["text"]) < 0.35


def test_thirty_seconds_of_silence_transcribe_to_empty_text(worker_proc: ServerProcess, speech):
    resp = post(worker_proc.url, speech["silence"].path)
    assert resp.status_code == 200
    assert resp.json()["text"] == ""


def test_bad_uploads_get_openai_shaped_4xx(worker_proc: ServerProcess, speech, tmp_path: Path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not audio at all\n" * 20)
    assert_openai_error(post(worker_proc.url, text_file), 400, "invalid_audio")

    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(speech["fox"].path.read_bytes()[:40])  # header cut mid-way
    assert_openai_error(post(worker_proc.url, truncated), 400, "invalid_audio")

    err = assert_openai_error(post(worker_proc.url, None, content=b""), 400, "invalid_audio")
    assert err["param"] == "file"

    err = assert_openai_error(
        post(worker_proc.url, speech["fox"].path, response_format="docx"), 400, "invalid_request"
    )
    assert err["param"] == "response_format"
    assert_openai_error(
        post(worker_proc.url, speech["fox"].path, model="large-v9"), 404, "model_not_found"
    )
    missing = httpx.post(f"{worker_proc.url}/v1/audio/transcriptions", data={"model": "tiny.en"})
    assert_openai_error(missing, 400, "invalid_request")
    # The worker is still healthy after all of that.
    assert post(worker_proc.url, speech["fox"].path).status_code == 200


def test_chinese_users_read_chinese_errors(worker_proc: ServerProcess):
    resp = httpx.post(
        f"{worker_proc.url}/v1/audio/transcriptions",
        files={"file": ("a.wav", b"")},
        headers={"Accept-Language": "zh-CN,zh;q=0.9"},
    )
    err = assert_openai_error(resp, 400, "invalid_audio")
    assert "音频" in err["message"]


def test_models_health_and_metrics(worker_proc: ServerProcess):
    models = httpx.get(f"{worker_proc.url}/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["tiny.en"]
    assert httpx.get(f"{worker_proc.url}/healthz").status_code == 200
    ready = httpx.get(f"{worker_proc.url}/readyz").json()
    assert ready["status"] == "ready" and ready["memory"]["reservations"] == 0
    metrics = httpx.get(f"{worker_proc.url}/metrics").text
    for name in (
        "asrpool_worker_requests_total",
        "asrpool_worker_in_flight",
        "asrpool_worker_audio_seconds_total",
        "asrpool_worker_decode_seconds_bucket",
        "asrpool_worker_oom_rejections_total",
    ):
        assert name in metrics


def test_upload_over_the_limit_is_413(tmp_path: Path, speech):
    with worker(tmp_path, "--max-upload-mb", "0.05") as proc:
        err = assert_openai_error(post(proc.url, speech["long"].path), 413, "file_too_large")
        assert err["param"] == "file"
        assert post(proc.url, speech["fox"].path, content=b"RIFF" + b"\0" * 1000).status_code == 400


def test_past_its_slots_the_worker_says_busy_at_once_and_reports_its_load(tmp_path: Path, speech):
    with worker(tmp_path, "--slots", "1") as proc:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: post(proc.url, speech["long"].path), range(4)))
        busy = [r for r in results if r.status_code == 503]
        assert busy and len(busy) < 4, [r.status_code for r in results]
        for r in busy:
            assert r.json()["error"]["code"] == "worker_busy"
            assert r.headers["x-asrpool-error-code"] == "worker_busy"
        for r in results:  # every answer says the worker's slots and their use
            assert r.headers["x-asrpool-slots"] == "1"
            # Refused because the one slot was taken: it says so. A 200 gave its slot back
            # before answering: 0, or 1 where a later request took it meanwhile.
            expected = ("1",) if r.status_code == 503 else ("0", "1")
            assert r.headers["x-asrpool-in-flight"] in expected, (r.status_code, r.headers)
        ready = httpx.get(f"{proc.url}/readyz").json()
        assert ready["load"] == {"slots": 1, "in_flight": 0}
        metrics = httpx.get(f"{proc.url}/metrics").text
        assert f"asrpool_worker_busy_rejections_total {float(len(busy))}" in metrics
        assert "asrpool_worker_oom_rejections_total 0.0" in metrics


def test_memory_guard_refuses_with_gpu_oom_under_load_then_recovers(tmp_path: Path, speech):
    # Slots enough for all: the memory budget (one decode) is what refuses here.
    with worker(tmp_path, *ONE_DECODE_FITS, "--slots", "6") as proc:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: post(proc.url, speech["long"].path), range(6)))
        codes = sorted(r.status_code for r in results)
        assert 200 in codes and 503 in codes, codes
        for r in results:
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "gpu_oom"
                assert r.headers["x-asrpool-error-code"] == "gpu_oom"
        ready = httpx.get(f"{proc.url}/readyz").json()
        assert ready["status"] == "ready" and ready["memory"]["reservations"] == 0
        again = post(proc.url, speech["fox"].path)
        assert again.status_code == 200 and "fox" in again.json()["text"].lower()
        metrics = httpx.get(f"{proc.url}/metrics").text
        refused = [
            ln
            for ln in metrics.splitlines()
            if ln.startswith("asrpool_worker_oom_rejections_total")
        ]
        assert refused and float(refused[0].split()[-1]) == codes.count(503)


def test_sigterm_drains_in_flight_requests(tmp_path: Path, speech):
    with worker(tmp_path) as proc, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, proc.url, speech["long"].path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait until the decode is running
            metrics = httpx.get(f"{proc.url}/metrics").text
            if "asrpool_worker_in_flight 1.0" in metrics:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the request never started decoding")
        proc.signal(signal.SIGTERM)
        resp = pending.result(timeout=60)
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["text"].split()) > 20
        # uvicorn re-raises the signal once drained, so the parent sees "terminated by SIGTERM".
        assert proc.proc.wait(30) == -signal.SIGTERM
        assert "Finished server process" in proc.log()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{proc.url}/healthz", timeout=2)


def test_tiny_en_translates_english_speech_into_exactly_its_transcription(
    worker_proc: ServerProcess, speech
):
    """tiny.en is English-only: faster-whisper gives such a model no task token, so the
    translate task decodes exactly as transcribe does (tests/unit/test_worker_translate.py
    checks that the task reaches the decode)."""
    clip = speech["fox"].path

    def verbose(route: str) -> dict:
        resp = httpx.post(
            f"{worker_proc.url}/v1/audio/{route}",
            files={"file": (clip.name, clip.read_bytes())},
            data={"response_format": "verbose_json"},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    translated, transcribed = verbose("translations"), verbose("transcriptions")
    assert (translated["task"], transcribed["task"]) == ("translate", "transcribe")
    assert translated["language"] == "english"
    assert translated["text"] == transcribed["text"]
    assert translated["segments"] == transcribed["segments"]
    assert "fox" in translated["text"].lower()
    # From another language it cannot: refused, naming the field, rather than nonsense.
    refused = httpx.post(
        f"{worker_proc.url}/v1/audio/translations",
        files={"file": (clip.name, clip.read_bytes())},
        data={"language": "de"},
        timeout=60,
    )
    err = assert_openai_error(refused, 400, "invalid_request")
    assert err["param"] == "language" and "only understands English" in err["message"]
