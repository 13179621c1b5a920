"""The fault backend does exactly what each mode says, as httpx (and a raw socket) sees it.

No model, no router: one double for most tests, switched between modes through
``/control``; a few more for the command-line options, flapping and SIGTERM.
The router's fault tests rely on these symptoms, so each is pinned here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asrpool_contract.wire import ERROR_CODE_HEADER, ErrorCode, mentions_out_of_memory, parse_error
from tests.support.fault_backend import (
    DEFAULT_TEXT,
    ENVOY_502_TEXT,
    ENVOY_503_TEXT,
    INTERNAL_SERVER_ERROR_DETAIL,
    LOGIN_PAGE_HTML,
    NGINX_500_HTML,
    NGINX_503_HTML,
    NOT_JSON_BODY,
    TRUNCATED_MISSING_BYTES,
    WRONG_SHAPE_KEY,
    XINFERENCE_OOM,
    Mode,
    fault_backend,
    hits,
    set_fault,
)
from tests.support.procs import ServerProcess

AUDIO = b"RIFF" + bytes(2000)  # never decoded: any bytes do
BOUNDARY = "fault-backend-test"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fault_backend(tmp_path_factory.mktemp("fault"), Mode.OK) as proc:
        yield proc


@pytest.fixture(autouse=True)
def healthy(request: pytest.FixtureRequest) -> None:
    """Each test that uses the shared double starts from a healthy pod and zero hits."""
    if "backend" in request.fixturenames:
        url = request.getfixturevalue("backend").url
        set_fault(url, mode="ok", ready="always", delay=None, text=DEFAULT_TEXT, reset_hits=True)


def transcribe(
    url: str,
    client: httpx.Client | None = None,
    path: str = "/v1/audio/transcriptions",
    timeout: httpx.Timeout | float = 5,
    **fields: str,
) -> httpx.Response:
    post = client.post if client is not None else httpx.post
    return post(
        f"{url}{path}",
        files={"file": ("a.wav", AUDIO, "audio/wav")},
        data={"model": "whisper-1", **fields},
        timeout=timeout,
    )


def raw_upload(port: int, timeout: float = 5) -> socket.socket:
    """A socket that has sent one complete multipart transcription request."""
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + AUDIO
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(head + body)
    return sock


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (FIN); a reset raises."""
    data = b""
    for _ in range(10_000):
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the server kept sending")


def wait_until_bodies_read(url: str, n: int, within_s: float = 5) -> None:
    deadline = time.monotonic() + within_s
    while hits(url)["bodies_read"] < n:
        assert time.monotonic() < deadline, hits(url)
        time.sleep(0.02)


# --- discovery, readiness, control ----------------------------------------------------------


def test_models_lists_the_model_and_readiness_follows_control(backend: ServerProcess) -> None:
    models = httpx.get(f"{backend.url}/v1/models").json()
    assert models == {"object": "list", "data": [{"id": "tiny.en", "object": "model"}]}
    assert httpx.get(f"{backend.url}/readyz").json() == {"status": "ready"}
    set_fault(backend.url, ready="never")
    assert httpx.get(f"{backend.url}/readyz").status_code == 503
    assert httpx.get(f"{backend.url}/healthz").status_code == 200


@pytest.mark.parametrize(
    "changes",
    [{"mode": "bogus"}, {"colour": "red"}, {"delay": -1}, {"ready": "sometimes"}, {"text": 3}],
)
def test_control_rejects_bad_changes_and_keeps_the_fault(
    backend: ServerProcess, changes: dict[str, object]
) -> None:
    response = httpx.post(f"{backend.url}/control", json=changes)
    assert response.status_code == 400
    assert transcribe(backend.url).json() == {"text": DEFAULT_TEXT}


def test_hits_count_requests_by_mode_and_bodies_read(backend: ServerProcess) -> None:
    transcribe(backend.url)
    set_fault(backend.url, mode="oom_json")
    transcribe(backend.url)
    transcribe(backend.url, path="/v1/audio/translations")
    counts = hits(backend.url)
    assert counts["total"] == 3
    assert counts["by_mode"] == {"ok": 1, "oom_json": 2}
    assert counts["bodies_read"] == 3


def test_a_switch_mid_burst_leaves_requests_in_flight_on_the_old_mode(
    backend: ServerProcess,
) -> None:
    set_fault(backend.url, delay=0.5)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(transcribe, backend.url)
        wait_until_bodies_read(backend.url, 1)
        set_fault(backend.url, mode="oom_json")
        assert transcribe(backend.url).status_code == 503
        assert in_flight.result().json() == {"text": DEFAULT_TEXT}


# --- ok -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_format", "content_type", "body"),
    [
        ("json", "application/json", json.dumps({"text": "fine words"})),
        ("text", "text/plain", "fine words\n"),
        ("srt", "application/x-subrip", "1\n00:00:00,000 --> 00:00:01,000\nfine words\n"),
        ("vtt", "text/vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nfine words\n"),
    ],
)
def test_ok_answers_in_the_asked_response_format(
    backend: ServerProcess, response_format: str, content_type: str, body: str
) -> None:
    set_fault(backend.url, text="fine words")
    response = transcribe(backend.url, response_format=response_format)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.text == body


def test_ok_verbose_json_has_language_duration_and_one_segment(backend: ServerProcess) -> None:
    body = transcribe(
        backend.url, path="/v1/audio/translations", response_format="verbose_json"
    ).json()
    assert body["task"] == "translate"
    assert (body["text"], body["language"], body["duration"]) == (DEFAULT_TEXT, "english", 1.0)
    assert [s["text"].strip() for s in body["segments"]] == [DEFAULT_TEXT]


def test_ok_refuses_an_unknown_response_format(backend: ServerProcess) -> None:
    response = transcribe(backend.url, response_format="docx")
    assert response.status_code == 400
    assert parse_error(response.json())[0] is ErrorCode.INVALID_REQUEST


def test_ok_waits_for_the_delay(backend: ServerProcess) -> None:
    set_fault(backend.url, delay=0.3)
    started = time.monotonic()
    assert transcribe(backend.url).json() == {"text": DEFAULT_TEXT}
    assert time.monotonic() - started >= 0.3


def test_one_connection_serves_many_requests_chunked_or_not(backend: ServerProcess) -> None:
    with httpx.Client(timeout=5) as client:
        before = client.get(f"{backend.url}/hits").json()["connections"]
        assert transcribe(backend.url, client).status_code == 200
        chunked = client.post(
            f"{backend.url}/v1/audio/transcriptions",
            content=iter([b"part one, ", b"part two"]),  # an iterator: chunked encoding
            headers={"Content-Type": "application/octet-stream"},
        )
        assert chunked.request.headers["transfer-encoding"] == "chunked"
        assert chunked.json() == {"text": DEFAULT_TEXT}
        set_fault(backend.url, mode="error_503_text")  # on a connection of its own
        assert transcribe(backend.url, client).status_code == 503
        after = client.get(f"{backend.url}/hits").json()
    assert after["connections"] - before == 1
    assert after["bodies_read"] == 3


# --- complete answers that are faults --------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status", "content_type", "body"),
    [
        (Mode.OOM_XINFERENCE, 500, "application/json", json.dumps({"detail": XINFERENCE_OOM})),
        (
            Mode.ERROR_500_JSON,
            500,
            "application/json",
            json.dumps({"detail": INTERNAL_SERVER_ERROR_DETAIL}),
        ),
        (Mode.ERROR_502_TEXT, 502, "text/plain", ENVOY_502_TEXT),
        (Mode.ERROR_503_TEXT, 503, "text/plain", ENVOY_503_TEXT),
        (Mode.ERROR_503_HTML, 503, "text/html", NGINX_503_HTML),
        (Mode.ERROR_500_HTML, 500, "text/html", NGINX_500_HTML),
        (Mode.OK_HTML, 200, "text/html", LOGIN_PAGE_HTML),
        (Mode.OK_EMPTY, 200, "application/json", ""),
        (Mode.OK_NOT_JSON, 200, "application/json", NOT_JSON_BODY),
        (Mode.OK_WRONG_SHAPE, 200, "application/json", json.dumps({WRONG_SHAPE_KEY: DEFAULT_TEXT})),
        (
            Mode.STREAM_BAD_MARK,
            200,
            "text/event-stream",
            "data: "
            + json.dumps(
                {"type": "transcript.text.delta", "delta": DEFAULT_TEXT, "asrpool_end": "soon"}
            )
            + "\n\n",
        ),
    ],
)
def test_each_answering_mode_sends_its_status_type_and_body(
    backend: ServerProcess, mode: Mode, status: int, content_type: str, body: str
) -> None:
    set_fault(backend.url, mode=mode)
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
        response = transcribe(backend.url, path=path)
        assert response.status_code == status
        assert response.headers["content-type"].startswith(content_type)
        assert response.text == body
    assert hits(backend.url)["bodies_read"] == 2


def test_answers_that_are_not_a_transcript_fail_to_parse_as_one(backend: ServerProcess) -> None:
    for mode in (Mode.OK_EMPTY, Mode.OK_NOT_JSON):
        set_fault(backend.url, mode=mode)
        with pytest.raises(json.JSONDecodeError):
            transcribe(backend.url).json()
    set_fault(backend.url, mode=Mode.OK_WRONG_SHAPE)
    assert not isinstance(transcribe(backend.url).json().get("text"), str)


def test_xinference_oom_text_reads_as_out_of_memory() -> None:
    assert mentions_out_of_memory(XINFERENCE_OOM)


def test_oom_json_is_our_workers_gpu_oom(backend: ServerProcess) -> None:
    set_fault(backend.url, mode=Mode.OOM_JSON)
    response = transcribe(backend.url)
    assert response.status_code == 503
    assert response.headers[ERROR_CODE_HEADER] == ErrorCode.GPU_OOM.value
    assert parse_error(response.json())[0] is ErrorCode.GPU_OOM


# --- broken transfers -----------------------------------------------------------------------


def test_ok_truncated_promises_more_bytes_than_it_sends_then_closes(
    backend: ServerProcess,
) -> None:
    set_fault(backend.url, mode=Mode.OK_TRUNCATED)
    with pytest.raises(httpx.RemoteProtocolError):
        transcribe(backend.url)
    with raw_upload(backend.port) as sock:
        head, _, body = read_to_eof(sock).partition(b"\r\n\r\n")  # FIN, not a reset
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(body) + TRUNCATED_MISSING_BYTES}".encode() in head
    assert body == json.dumps({"text": DEFAULT_TEXT}).encode()


def test_reset_after_upload_reads_the_body_then_resets(backend: ServerProcess) -> None:
    set_fault(backend.url, mode=Mode.RESET_AFTER_UPLOAD)
    with pytest.raises(httpx.ReadError):
        transcribe(backend.url)
    with raw_upload(backend.port) as sock, pytest.raises(ConnectionResetError):
        read_to_eof(sock)
    assert hits(backend.url)["bodies_read"] == 2


def test_hang_reads_the_body_never_answers_and_blocks_no_one(backend: ServerProcess) -> None:
    set_fault(backend.url, mode=Mode.HANG)
    with raw_upload(backend.port, timeout=0.3) as sock:
        wait_until_bodies_read(backend.url, 1)
        # Other connections are served while one hangs.
        assert httpx.get(f"{backend.url}/v1/models", timeout=1).status_code == 200
        with pytest.raises(TimeoutError):
            sock.recv(1)
    with pytest.raises(httpx.ReadTimeout):
        transcribe(backend.url, timeout=httpx.Timeout(5, read=0.5))
    assert hits(backend.url)["bodies_read"] == 2


def test_trickle_sends_headers_at_once_then_one_byte_per_delay(backend: ServerProcess) -> None:
    delay = 0.05
    set_fault(backend.url, mode=Mode.TRICKLE, delay=delay, text="hi")
    expected = json.dumps({"text": "hi"}).encode()
    with raw_upload(backend.port) as sock:
        started = time.monotonic()
        received = sock.recv(65536)
        # The whole head in the first read: written at once, not a byte per delay as the body.
        assert b"\r\n\r\n" in received, received
        reads = 0
        while len(received) < received.index(b"\r\n\r\n") + 4 + len(expected):
            received += sock.recv(65536)
            reads += 1
        body_after = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(expected)}".encode() in head
    assert body == expected
    assert body_after >= (len(expected) - 1) * delay  # a sleep's lower bound, not a speed
    assert reads >= len(expected) // 2  # in small pieces, not one write


def test_trickle_never_trips_a_per_read_timeout(backend: ServerProcess) -> None:
    # httpx's read timeout is per read: a byte every 0.1 s keeps a 0.5 s timeout happy for
    # as long as the body lasts, so only a deadline on the whole answer stops a trickle.
    set_fault(backend.url, mode=Mode.TRICKLE, delay=0.1, text="hi")
    started = time.monotonic()
    response = transcribe(backend.url, timeout=httpx.Timeout(5, read=0.5))
    assert response.json() == {"text": "hi"}
    assert time.monotonic() - started > 1.0


# --- command line, flapping, SIGTERM --------------------------------------------------------


def test_command_line_sets_mode_model_readiness_and_text(tmp_path: Path) -> None:
    with fault_backend(
        tmp_path, Mode.OK_WRONG_SHAPE, model="large-v3", ready="never", text="from the flags"
    ) as proc:
        assert httpx.get(f"{proc.url}/v1/models").json()["data"][0]["id"] == "large-v3"
        assert httpx.get(f"{proc.url}/readyz").status_code == 503
        assert transcribe(proc.url).json() == {WRONG_SHAPE_KEY: "from the flags"}


def test_flapping_pod_refuses_connections_and_cuts_open_ones(tmp_path: Path) -> None:
    period = 0.4
    with fault_backend(tmp_path, Mode.HANG, flap_period=period) as proc:
        phases: list[str] = []  # "up" / "down" as fresh connections find it, repeats merged
        deadline = time.monotonic() + 6 * period
        while time.monotonic() < deadline and phases[-3:] != ["up", "down", "up"]:
            try:
                httpx.get(f"{proc.url}/healthz", timeout=1).raise_for_status()
                phase = "up"
            except httpx.ConnectError:
                phase = "down"
            if phases[-1:] != [phase]:
                phases.append(phase)
            time.sleep(0.05)
        assert phases[-3:] == ["up", "down", "up"]
        # A request hanging while the pod is up is cut (FIN or RST) when it goes down.
        sock = None
        for _ in range(40):
            with contextlib.suppress(ConnectionRefusedError):
                sock = raw_upload(proc.port, timeout=2 * period + 1)
                break
            time.sleep(0.05)
        assert sock is not None
        with sock:
            try:
                cut = sock.recv(1) == b""
            except ConnectionResetError:
                cut = True
        assert cut


def test_sigterm_exits_zero_while_a_request_hangs(tmp_path: Path) -> None:
    with fault_backend(tmp_path, Mode.HANG) as proc, raw_upload(proc.port) as sock:
        wait_until_bodies_read(proc.url, 1)
        started = time.monotonic()
        assert proc.stop() == 0
        assert time.monotonic() - started < 5
        assert sock.recv(1) == b""
