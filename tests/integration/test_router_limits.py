"""Limits that protect the router from its clients, on real routers in front of a real worker.

Uploads: a chunked upload past the size limit is cut off while it streams; the uploads held
at once are capped (429 with Retry-After) and give their room back; headers and bodies that
stop coming are timed out. Live sessions: capped in total and per API key, closed when
idle, and the caps' counts come back down however a session ends. Every refusal is in
OpenAI's shape (HTTP error body, or realtime ``error`` event). Small limits, set by flags,
keep the tests fast.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.procs import ServerProcess, router
from tests.support.realtime_client import Session, open_session

pytestmark = pytest.mark.slow

KEY_A, KEY_B = "key-a-limits-test", "key-b-limits-test"
UPLOAD_LIMIT = 2**20  # --max-upload-mb 1
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 4.0
BOUNDARY = "limits-test-boundary"
PREAMBLE = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="file"; filename="audio.wav"\r\n'
    "Content-Type: audio/wav\r\n\r\n"
).encode()
CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, worker_proc: ServerProcess):
    """A router with auth and small limits: 1 MiB uploads, 2 MiB held at once, 3 sessions."""
    with router(
        tmp_path_factory.mktemp("limited"),
        [worker_proc.url],
        *("--max-upload-mb", "1", "--max-spooled-mb", "2"),
        *("--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", str(BODY_TIMEOUT_S)),
        *("--max-sessions", "3", "--max-sessions-per-key", "2"),
        api_keys=(KEY_A, KEY_B),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def idle_router(tmp_path_factory: pytest.TempPathFactory, worker_proc: ServerProcess):
    """One session at most, closed after 1 s without a client message."""
    with router(
        tmp_path_factory.mktemp("idle"),
        [worker_proc.url],
        *("--max-sessions", "1", "--session-idle-timeout", "1"),
    ) as proc:
        yield proc


# --- helpers --------------------------------------------------------------------------


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_error(status: int, body: Any, expected_status: int, code: str) -> str:
    assert status == expected_status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code
    assert err["message"]
    return str(err["message"])


def raw_upload(
    proc: ServerProcess, *, content_length: int | None, key: str = KEY_A
) -> socket.socket:
    """A socket with an upload's headers and multipart preamble sent, the file still to come."""
    sock = socket.create_connection((proc.host, proc.port), timeout=30)
    length = (
        f"Content-Length: {content_length}\r\n"
        if content_length is not None
        else "Transfer-Encoding: chunked\r\n"
    )
    head = (
        "POST /v1/audio/transcriptions HTTP/1.1\r\n"
        f"Host: {proc.host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{length}\r\n"
    )
    sock.sendall(head.encode() + (PREAMBLE if content_length is not None else b""))
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def proc_written_bytes(proc: ServerProcess) -> int | None:
    """Bytes the process has written (spool files included), where /proc tells."""
    try:
        for line in Path(f"/proc/{proc.proc.pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


# --- uploads --------------------------------------------------------------------------


def test_chunked_upload_past_the_limit_gets_413_before_the_client_finished(limited):
    sent = 0
    total = 64 * 2**20

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield PREAMBLE
        while sent < total:
            sent += 64 * 1024
            yield b"\0" * (64 * 1024)

    written_before = proc_written_bytes(limited)
    resp = httpx.post(
        f"{limited.url}/v1/audio/transcriptions",
        content=body(),  # a generator: sent chunked, no Content-Length
        headers={**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=60,
    )
    message = assert_openai_error(resp.status_code, resp.json(), 413, "file_too_large")
    assert "1 MB" in message
    # Cut off near the limit (plus what socket buffers hold), far from the 64 MiB offered.
    assert sent < 16 * 2**20, sent
    assert resp.headers["connection"] == "close"  # the rest is never read
    written_after = proc_written_bytes(limited)
    if written_before is not None and written_after is not None:
        assert written_after - written_before < 4 * 2**20  # the spool held ~1 MiB, no more


def test_declared_length_past_the_limit_is_refused_before_the_body(limited):
    sock = raw_upload(limited, content_length=50 * 2**20)
    with sock:
        raw, _ = read_until_closed(sock, timeout=10)
    status, _, body = parse_response(raw)
    assert_openai_error(status, body, 413, "file_too_large")


def test_spool_cap_gives_429_with_retry_after_and_gives_the_room_back(limited, speech):
    # Two uploads of ~1 MB declared, half sent, take ~2 MB of the 2 MiB the router may hold.
    file_size = 1_000_000
    length = len(PREAMBLE) + file_size + len(CLOSING)
    held = [raw_upload(limited, content_length=length) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"\0" * 100_000)
        time.sleep(0.5)  # the router reads both headers and holds their declared length
        declared = httpx.post(
            f"{limited.url}/v1/audio/transcriptions",
            files={"file": ("audio.wav", b"\0" * file_size)},
            headers=auth(),
            timeout=30,
        )
        message = assert_openai_error(declared.status_code, declared.json(), 429, "queue_full")
        assert "holding too many uploads" in message
        assert int(declared.headers["retry-after"]) >= 1

        def chunks() -> Iterator[bytes]:
            yield PREAMBLE
            for _ in range(16):
                yield b"\0" * 64_000

        chunked = httpx.post(
            f"{limited.url}/v1/audio/transcriptions",
            content=chunks(),
            headers={**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=30,
        )
        assert_openai_error(chunked.status_code, chunked.json(), 429, "queue_full")
        assert "retry-after" in chunked.headers
    finally:
        for sock in held:
            sock.close()  # a client that gives up mid-upload: its room must come back

    # Two uploads of ~960 kB at once fit only if the abandoned ones gave all their room back.
    silence = speech["silence"].path.read_bytes()
    assert len(silence) > 900_000

    def post_silence() -> httpx.Response:
        return httpx.post(
            f"{limited.url}/v1/audio/transcriptions",
            files={"file": ("silence.wav", silence)},
            headers=auth(),
            timeout=120,
        )

    def both_fit() -> bool:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: post_silence(), range(2)))
        assert all(a.status_code in (200, 429) for a in answers), [a.text for a in answers]
        return all(a.status_code == 200 for a in answers)

    assert until(both_fit, timeout=30)
    fox = httpx.post(
        f"{limited.url}/v1/audio/transcriptions",
        files={"file": ("fox.wav", speech["fox"].path.read_bytes())},
        headers=auth(),
        timeout=120,
    )
    assert fox.status_code == 200 and "fox" in fox.json()["text"].lower()


def test_headers_sent_halfway_are_cut_off_after_the_header_timeout(limited):
    # A new connection that stops mid-headers.
    with socket.create_connection((limited.host, limited.port)) as sock:
        sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Ty")
        raw, elapsed = read_until_closed(sock, timeout=10)
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < HEADER_TIMEOUT_S + 5
    status, headers, body = parse_response(raw)
    assert_openai_error(status, body, 408, "request_timeout")
    assert headers["connection"] == "close"

    # A kept-alive connection: one request served, the next one's headers stop halfway.
    with socket.create_connection((limited.host, limited.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        first = b""
        while not first.endswith(b'{"status":"alive"}'):  # the whole first answer
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT_S * 1.5)  # idle between requests is the keep-alive's business
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        raw, elapsed = read_until_closed(sock, timeout=10)
    assert elapsed < HEADER_TIMEOUT_S + 5 and raw.startswith(b"HTTP/1.1 408")

    # A connection that never sends a byte is closed too.
    with socket.create_connection((limited.host, limited.port)) as sock:
        _, elapsed = read_until_closed(sock, timeout=10)
    assert elapsed < HEADER_TIMEOUT_S + 5


def test_an_upload_that_stops_mid_body_gets_408_request_timeout(limited):
    sock = raw_upload(limited, content_length=len(PREAMBLE) + 500_000 + len(CLOSING))
    with sock:
        sock.sendall(b"RIFF" + b"\0" * 10_000)
        raw, elapsed = read_until_closed(sock, timeout=BODY_TIMEOUT_S + 10)
    assert BODY_TIMEOUT_S * 0.8 <= elapsed < BODY_TIMEOUT_S + 5
    status, headers, body = parse_response(raw)
    message = assert_openai_error(status, body, 408, "request_timeout")
    assert f"{BODY_TIMEOUT_S:g} s" in message
    assert headers["connection"] == "close"
    # The router goes on serving.
    assert httpx.get(f"{limited.url}/v1/models", headers=auth(), timeout=10).status_code == 200


# --- live sessions --------------------------------------------------------------------


def refused_session(proc: ServerProcess, key: str | None) -> tuple[dict[str, Any], int | None]:
    """Connect, expecting a refusal: (the error event, the close code)."""
    ws_url = proc.url.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    headers = auth(key) if key else {}
    with connect(ws_url, additional_headers=headers, open_timeout=10) as ws:
        event = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        return event, ws.close_code


def try_session(proc: ServerProcess, key: str | None) -> Session | None:
    """A session if the router admits one now, else None (after checking the refusal)."""
    ws_url = proc.url.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    stack = contextlib.ExitStack()
    ws = stack.enter_context(
        connect(ws_url, additional_headers=auth(key) if key else {}, open_timeout=10)
    )
    session = Session(ws, stack).start()
    first = session.inbox.get(timeout=10).event
    if first["type"] == "session.created":  # a GA session (no beta header)
        return session
    session.close()
    assert first["error"]["code"] == "session_limit_reached", first
    return None


def admitted(proc: ServerProcess, key: str | None, timeout: float = 10.0) -> Session:
    """A session, once the router has counted a closed one down (a bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = try_session(proc, key)
        if session is not None:
            return session
        time.sleep(0.1)
    raise AssertionError(f"no session admitted within {timeout}s")


def assert_limit_refusal(event: dict[str, Any], close_code: int | None, words: str) -> None:
    assert event["type"] == "error", event
    err = event["error"]
    assert err["code"] == "session_limit_reached" and words in err["message"], err
    assert close_code == 1013


def test_session_caps_per_key_and_in_total_and_a_slot_comes_back_on_close(limited):
    a1, a2 = open_session(limited.url, KEY_A), open_session(limited.url, KEY_A)
    try:
        assert_limit_refusal(*refused_session(limited, KEY_A), "API key already has 2")
        b1 = open_session(limited.url, KEY_B)
        try:
            assert_limit_refusal(*refused_session(limited, KEY_B), "already runs 3 live")
            a1.close()  # a clean close frees a slot
            a3 = admitted(limited, KEY_A)
            a3.close()
        finally:
            b1.close()
    finally:
        a1.close()
        a2.close()
    # Everything closed: the full caps are free again.
    sessions = [admitted(limited, KEY_A), admitted(limited, KEY_A), admitted(limited, KEY_B)]
    for s in sessions:
        s.close()


def test_sessions_that_end_abruptly_or_after_an_error_give_their_slot_back(limited):
    a1, a2 = open_session(limited.url, KEY_A), open_session(limited.url, KEY_A)
    try:
        # An abrupt disconnect: the TCP connection goes without a close frame.
        a1.ws.socket.shutdown(socket.SHUT_RDWR)
        a3 = admitted(limited, KEY_A)
        # A session that got an error event (bad JSON), then goes away.
        a2.ws.send("{not json")
        assert a2.wait_for("error", code="invalid_json")
        a2.close()
        a4 = admitted(limited, KEY_A)
        a3.close()
        a4.close()
    finally:
        a1.close()
        a2.close()


def test_an_idle_session_is_closed_with_its_error_event_and_frees_its_slot(idle_router):
    session = open_session(idle_router.url)
    try:
        event = session.wait_for("error", timeout=10, code="session_idle_timeout")
        assert "1 s" in event["error"]["message"]
        assert session.closed.wait(10) and session.close_code == 1000
    finally:
        session.close()
    # The only slot is free again; a session that keeps talking is not idle.
    talking = admitted(idle_router, None)
    try:
        for _ in range(4):
            time.sleep(0.5)
            talking.send({"type": "input_audio_buffer.clear"})
            talking.wait_for("input_audio_buffer.cleared", timeout=5)
        assert not talking.closed.is_set()
    finally:
        talking.close()
