"""A long file is cut at pauses and decoded across the pool, then joined: real processes.

The joined answer has the shape an answer from one pod has in every format; pieces go to
every pod with room; a pod lost mid-file costs nothing; what the router cannot decode is
refused before it costs a pod.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import ServerProcess, router, workers
from tests.support.speech import word_error_rate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_file(speech: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Over two minutes: the six sentences, five times."""
    path = tmp_path_factory.mktemp("long") / "long5.wav"
    subprocess.run(["sox", *[str(speech["long"].path)] * 5, str(path)], check=True)
    return path, " ".join([speech["long"].text] * 5)


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with workers(tmp_path_factory.mktemp("pods"), 2) as procs:
        yield procs


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def post(url: str, path: Path, **fields: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        data=fields,
        timeout=300,
    )


def served(pod: ServerProcess) -> float:
    text = httpx.get(f"{pod.url}/metrics", timeout=5).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("asrpool_worker_requests_total{") and 'code="ok"' in line
    )


def cue_times(subtitles: str, decimal: str) -> list[tuple[float, float]]:
    stamp = rf"(\d+):(\d\d):(\d\d){re.escape(decimal)}(\d\d\d)"
    out = []
    for m in re.finditer(rf"{stamp} --> {stamp}", subtitles):
        g = [int(x) for x in m.groups()]
        out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000,
                    g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000))  # fmt: skip
    return out


def test_a_long_file_is_decoded_across_the_pool_and_joined_in_every_format(
    tmp_path: Path, long_file: tuple[Path, str], pods: list[ServerProcess]
) -> None:
    path, expected = long_file
    with (
        router(tmp_path, [p.url for p in pods], name="sharding") as cut,
        router(tmp_path, [p.url for p in pods], "--shard-min-seconds", "0", name="whole") as whole,
    ):
        before = [served(p) for p in pods]
        sharded = post(cut.url, path, response_format="verbose_json",
                       **{"timestamp_granularities[]": "word"})  # fmt: skip
        assert sharded.status_code == 200, sharded.text
        pieces = re.search(r"cut into (\d+) pieces", cut.log())
        assert pieces and int(pieces.group(1)) >= 4, cut.log()
        # Every pod took pieces: the file was decoded across the pool.
        assert all(served(p) > b for p, b in zip(pods, before, strict=True))
        body = sharded.json()
        assert word_error_rate(expected, body["text"]) < 0.35
        seconds = wav_seconds(path)
        assert body["duration"] == pytest.approx(seconds, abs=0.5)
        starts = [s["start"] for s in body["segments"]]
        assert starts == sorted(starts) and starts[-1] > seconds - 30
        assert [s["id"] for s in body["segments"]] == list(range(len(body["segments"])))
        word_starts = [w["start"] for w in body["words"]]
        assert word_starts == sorted(word_starts) and word_starts[-1] > seconds - 30
        one_pod = post(whole.url, path, response_format="verbose_json",
                       **{"timestamp_granularities[]": "word"}).json()  # fmt: skip
        assert set(body) == set(one_pod)
        assert set(body["segments"][0]) == set(one_pod["segments"][0])
        assert set(body["words"][0]) == set(one_pod["words"][0])
        for response_format, decimal in (("srt", ","), ("vtt", ".")):
            subs = post(cut.url, path, response_format=response_format).text
            times = cue_times(subs, decimal)
            assert times == sorted(times) and times[-1][1] > seconds - 30, subs[-300:]
            assert subs.startswith("WEBVTT") == (response_format == "vtt")
        text = post(cut.url, path, response_format="text")
        assert text.headers["content-type"].startswith("text/plain")
        assert word_error_rate(expected, text.text) < 0.35
        plain = post(cut.url, path).json()
        assert set(plain) == {"text", "usage"} and plain["usage"]["seconds"] >= int(seconds)


def test_a_pod_lost_mid_file_costs_nothing(tmp_path: Path, long_file: tuple[Path, str]) -> None:
    path, expected = long_file
    with workers(tmp_path, 2) as procs, router(tmp_path, [p.url for p in procs]) as r:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            future = ex.submit(post, r.url, path)
            deadline = time.monotonic() + 60
            while "cut into" not in r.log():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)  # the pieces are on their pods
            procs[0].signal(signal.SIGKILL)
            answer = future.result(timeout=300)
        assert answer.status_code == 200, answer.text
        assert word_error_rate(expected, answer.json()["text"]) < 0.35
        s = httpx.get(f"{r.url}/stats", timeout=10).json()
        assert s["active_tasks"] == 0 and s["retries"], s


def test_an_upload_the_router_cannot_decode_never_reaches_a_pod(
    tmp_path: Path, pods: list[ServerProcess]
) -> None:
    garbage = tmp_path / "long.mp3"
    garbage.write_bytes(b"ID3" + bytes(range(256)) * 8000)  # ~2 MB: long enough to be cut
    with router(tmp_path, [p.url for p in pods], name="refuses") as r:
        before = [served(p) for p in pods]
        answer = post(r.url, garbage)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_audio"
        assert [served(p) for p in pods] == before
