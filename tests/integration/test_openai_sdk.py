"""The current openai SDK as a drop-in: OpenAI's model names, streamed transcriptions,
logprobs, chunking, and refusals of what the pool cannot do, against real processes.

Every answer and every streamed event is checked against the SDK's own pydantic types
(the SDK itself builds its objects without validating), so a drift from OpenAI's shapes
fails here.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import signal
import subprocess
import time
import typing
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import AudioModel, Model
from openai.types.audio import Transcription, TranscriptionStreamEvent, TranscriptionVerbose
from pydantic import TypeAdapter

from asrpool_contract.wire import OPENAI_TRANSCRIPTION_MODELS
from tests.support.procs import LocalPool, ServerProcess, router, start_local, workers
from tests.support.router_checks import assert_no_slots_held, stats
from tests.support.speech import SENTENCES, word_error_rate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EVENT = TypeAdapter(TranscriptionStreamEvent)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> typing.Iterator[LocalPool]:
    pool = start_local(tmp_path_factory.mktemp("local"), "--alias", "meetings=tiny.en")
    try:
        yield pool
    finally:
        pool.proc.stop()


def client_for(pool: LocalPool) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{pool.url}/v1", api_key=pool.api_key, max_retries=0)


def test_our_model_names_are_the_sdks() -> None:
    assert set(OPENAI_TRANSCRIPTION_MODELS) == set(typing.get_args(AudioModel))


def test_every_openai_model_name_and_an_alias_reach_the_default_pool(
    local: LocalPool, speech: dict[str, Any]
) -> None:
    client = client_for(local)
    for name in (*OPENAI_TRANSCRIPTION_MODELS, "meetings", "tiny.en"):
        with speech["fox"].path.open("rb") as f:
            result = client.audio.transcriptions.create(model=name, file=f)
        assert "fox" in result.text.lower(), name
    with pytest.raises(openai.NotFoundError) as err, speech["fox"].path.open("rb") as f:
        client.audio.transcriptions.create(model="large-v9", file=f)
    assert err.value.code == "model_not_found" and "GET /v1/models" in err.value.message


def test_models_lists_what_a_client_may_send_with_aliases_marked(local: LocalPool) -> None:
    body = httpx.get(f"{local.url}/v1/models", headers=local.auth, timeout=10).json()
    cards = {m["id"]: TypeAdapter(Model).validate_python(m) for m in body["data"]}
    assert cards["tiny.en"].model_extra == {"asrpool_pool": "tiny.en", "asrpool_kind": "pool"}
    assert cards["meetings"].model_extra == {"asrpool_pool": "tiny.en", "asrpool_kind": "alias"}
    for name in OPENAI_TRANSCRIPTION_MODELS:
        assert cards[name].model_extra == {"asrpool_pool": "tiny.en", "asrpool_kind": "openai"}
    one = client_for(local).models.retrieve("meetings")
    assert one.id == "meetings" and one.model_extra["asrpool_kind"] == "alias"


def post(pool: LocalPool, path: Path, **fields: str | list[str]) -> httpx.Response:
    return httpx.post(
        f"{pool.url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        data=fields,
        headers=pool.auth,
        timeout=120,
    )


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("text/event-stream")
    return [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


def test_a_streamed_transcription_is_openais_events_and_the_deltas_make_the_text(
    local: LocalPool, speech: dict[str, Any]
) -> None:
    events = sse_events(post(local, speech["long"].path, model="whisper-1", stream="true"))
    for event in events:
        EVENT.validate_python(event)  # OpenAI's own shapes, nothing else (no asrpool marks)
        assert not any(key.startswith("asrpool") for key in event)
    *deltas, done = events
    assert len(deltas) >= 2 and {e["type"] for e in deltas} == {"transcript.text.delta"}
    assert done["type"] == "transcript.text.done"
    assert "".join(e["delta"] for e in deltas) == done["text"]
    assert word_error_rate(speech["long"].text, done["text"]) < 0.35
    assert done["usage"]["type"] == "tokens" and done["usage"]["output_tokens"] > 10
    # …and as the SDK reads them.
    with speech["long"].path.open("rb") as f:
        stream = client_for(local).audio.transcriptions.create(
            model="gpt-4o-mini-transcribe", file=f, stream=True
        )
        read = list(stream)
    assert read[-1].type == "transcript.text.done"
    assert "".join(e.delta for e in read[:-1]) == read[-1].text  # type: ignore[union-attr]


def test_logprobs_come_per_word_in_openais_shape(local: LocalPool, speech: dict[str, Any]) -> None:
    answer = post(local, speech["fox"].path, **{"include[]": "logprobs"})
    body = TypeAdapter(Transcription).validate_python(answer.json())
    assert body.logprobs and len(body.logprobs) >= 8
    for lp in body.logprobs:
        assert lp.token and lp.logprob is not None and lp.logprob <= 0
        assert bytes(int(b) for b in lp.bytes or []) == lp.token.encode()  # floats in the SDK
    words = " ".join(lp.token.strip() for lp in body.logprobs)
    assert word_error_rate(speech["fox"].text, words) < 0.35
    done = sse_events(post(local, speech["fox"].path, stream="true", **{"include[]": "logprobs"}))
    assert done[-1]["logprobs"] and all("logprob" in lp for lp in done[-1]["logprobs"])
    refused = post(local, speech["fox"].path, response_format="text", **{"include[]": "logprobs"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "include[]"


def test_chunking_strategy_drives_the_vad_and_a_bad_value_names_its_field(
    local: LocalPool, speech: dict[str, Any]
) -> None:
    client = client_for(local)
    with speech["meeting"].path.open("rb") as f:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            chunking_strategy={"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 300},
        )
    assert word_error_rate(speech["meeting"].text, result.text) < 0.35
    with speech["fox"].path.open("rb") as f:
        assert (
            "fox"
            in client.audio.transcriptions.create(
                model="whisper-1", file=f, chunking_strategy="auto"
            ).text.lower()
        )
    with pytest.raises(openai.BadRequestError) as err, speech["fox"].path.open("rb") as f:
        client.audio.transcriptions.create(
            model="whisper-1", file=f, chunking_strategy={"type": "server_vad", "threshold": 3}
        )
    assert err.value.body["param"] == "chunking_strategy[threshold]"  # type: ignore[index]


REFUSED = [
    ({"response_format": "diarized_json"}, "response_format", "diarization"),
    ({"known_speaker_names": ["agent"]}, "known_speaker_names[]", "diarization"),
    ({"stream": True, "response_format": "srt"}, "stream", "json or text"),
    ({"languages": ["zh"]}, "languages[]", "only understands English"),
    ({"language": "de"}, "language", "only understands English"),
]


@pytest.mark.parametrize(("fields", "param", "says"), REFUSED, ids=[r[1] for r in REFUSED])
def test_what_the_pool_cannot_do_is_refused_not_ignored(
    local: LocalPool, speech: dict[str, Any], fields: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err, speech["fox"].path.open("rb") as f:
        client_for(local).audio.transcriptions.create(model="whisper-1", file=f, **fields)
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == param and says in body["message"]


def test_languages_and_keywords_are_honoured(local: LocalPool, speech: dict[str, Any]) -> None:
    with speech["library"].path.open("rb") as f:
        result = client_for(local).audio.transcriptions.create(
            model="gpt-transcribe", file=f, languages=["en", "fr"], keywords=["library"]
        )
    assert word_error_rate(speech["library"].text, result.text) < 0.35


@pytest.mark.parametrize(
    ("response_format", "shape"),
    [("json", Transcription), ("verbose_json", TranscriptionVerbose)],
)
def test_json_answers_are_openais_types(
    local: LocalPool, speech: dict[str, Any], response_format: str, shape: type
) -> None:
    body = post(local, speech["fox"].path, response_format=response_format).json()
    TypeAdapter(shape).validate_python(body)


def test_the_examples_of_docs_openai_md_run(local: LocalPool, speech: dict[str, Any]) -> None:
    text = (REPO / "docs" / "openai.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        scope = {
            "BASE_URL": f"{local.url}/v1",
            "API_KEY": local.api_key,
            "SPEECH_WAV": str(speech["long"].path),
        }
        exec(compile(block, "docs/openai.md", "exec"), scope)


def _serving(pods: list[ServerProcess]) -> ServerProcess | None:
    for pod in pods:
        metrics = httpx.get(f"{pod.url}/metrics", timeout=5).text
        if re.search(r"^asrpool_worker_in_flight 1\.0$", metrics, re.M):
            return pod
    return None


def test_a_pod_killed_mid_stream_is_replaced_and_the_text_goes_on_without_repeats(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    # Three windows of 30 s: the first one's deltas arrive well before the last one's.
    long = tmp_path / "long3.wav"
    subprocess.run(["sox", *[str(speech["long"].path)] * 3, str(long)], check=True)
    expected = " ".join([speech["long"].text] * 3)
    with workers(tmp_path, 2) as pods, router(tmp_path, [p.url for p in pods]) as r:
        client = openai.OpenAI(base_url=f"{r.url}/v1", api_key="unused", max_retries=0)
        deltas: list[str] = []
        done = None
        killed = None
        with long.open("rb") as f:
            stream = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
            for event in stream:
                if event.type == "transcript.text.delta":
                    deltas.append(event.delta)
                    if killed is None:
                        killed = _serving(pods)
                        assert killed is not None, "no worker was decoding the stream"
                        killed.signal(signal.SIGKILL)
                else:
                    done = event
        assert done is not None and killed is not None
        text = "".join(deltas)
        assert text == done.text  # type: ignore[union-attr]
        assert word_error_rate(expected, text) < 0.35, text
        # Each sentence three times: not lost, not repeated across the cut.
        for sentence in SENTENCES.values():
            keyword = max(sentence.split(), key=len).strip(".").lower()
            assert text.lower().count(keyword) == 3, (keyword, text)
        s = assert_no_slots_held(r.url)
        assert s["failed_tasks"] == 0 and s["retries"], s


def test_with_every_pod_down_a_stream_is_a_plain_http_error(
    tmp_path: Path, speech: dict[str, Any]
) -> None:
    with (
        workers(tmp_path, 1) as pods,
        router(tmp_path, [p.url for p in pods], "--queue-timeout", "3") as r,
    ):
        pods[0].signal(signal.SIGKILL)
        pods[0].proc.wait(10)
        started = time.monotonic()
        answer = httpx.post(
            f"{r.url}/v1/audio/transcriptions",
            files={"file": ("a.wav", speech["fox"].path.read_bytes())},
            data={"stream": "true"},
            timeout=60,
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert time.monotonic() - started < 20
        assert stats(r.url)["active_tasks"] == 0


def test_streams_and_plain_requests_share_the_pool(
    local: LocalPool, speech: dict[str, Any]
) -> None:
    def one(i: int) -> str:
        if i % 2:
            events = sse_events(post(local, speech["fox"].path, stream="true"))
            return str(events[-1]["text"])
        return str(post(local, speech["fox"].path).json()["text"])

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        texts = list(ex.map(one, range(8)))
    assert all("fox" in t.lower() for t in texts), texts
