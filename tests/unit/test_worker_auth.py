"""Workers serve routers only: the token on /v1, open health; the shared credential helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from asrpool_contract.credentials import worker_headers, worker_token
from asrpool_worker.app import create_app
from asrpool_worker.settings import WorkerSettings


def _no_engine(settings: WorkerSettings) -> object:
    raise RuntimeError("no engine in this test")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    app = create_app(WorkerSettings(worker_token="s3cret"), str(tmp_path), _no_engine)  # type: ignore[arg-type]
    return TestClient(app)


def test_a_worker_with_a_token_refuses_v1_calls_without_it(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        r = client.get("/v1/models", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert "router" in r.json()["error"]["message"]
    upload = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")})
    assert upload.status_code == 401
    assert client.post("/v1/audio/translations", files={"file": ("a.wav", b"")}).status_code == 401


def test_the_routers_token_opens_v1_and_health_needs_none(client: TestClient) -> None:
    assert client.get("/v1/models", headers=worker_headers("s3cret")).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    # The kubelet's probe: never 401. No engine was loaded here (the app was not started),
    # so it answers exactly what a loading worker does.
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (503, "loading")


def test_a_worker_without_a_token_serves_anyone(tmp_path: Path) -> None:
    app = create_app(WorkerSettings(), str(tmp_path), _no_engine)  # type: ignore[arg-type]
    assert TestClient(app).get("/v1/models").status_code == 200


def test_the_token_comes_from_its_file_first_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASRPOOL_WORKER_TOKEN_FILE", raising=False)
    monkeypatch.delenv("ASRPOOL_WORKER_TOKEN", raising=False)
    assert worker_token() is None and worker_headers(None) == {}
    monkeypatch.setenv("ASRPOOL_WORKER_TOKEN", "from-env")
    assert worker_token() == "from-env"
    path = tmp_path / "token"
    path.write_text("from-file\n")  # a Secret mounted as a file may end in a newline
    assert worker_token(str(path)) == "from-file"
    monkeypatch.setenv("ASRPOOL_WORKER_TOKEN_FILE", str(path))
    assert worker_token() == "from-file"
    path.write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        worker_token()


def test_settings_never_print_the_token() -> None:
    assert "s3cret" not in repr(WorkerSettings(worker_token="s3cret"))
