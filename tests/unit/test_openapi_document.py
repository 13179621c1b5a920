"""The OpenAPI document says what the routes do (asrpool_contract.openapi), and HTTP at the edges.

In process, without a pod: the shape of the document. ``tests/integration/
test_openapi_contract.py`` holds the document to the real servers with schemathesis.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from asrpool_contract.audio_form import RESPONSE_FORMATS, AudioUpload
from asrpool_contract.wire import ERRORS, ErrorCode
from asrpool_router.app import AUDIO_ERRORS, create_app
from asrpool_router.settings import RouterSettings

KEY = "test-key"


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(RouterSettings(api_keys=(KEY,))))


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()  # type: ignore[no-any-return]


def codes(response: dict[str, Any]) -> set[str]:
    return set(response["headers"]["x-asrpool-error-code"]["schema"]["enum"])


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations"])
def test_the_audio_routes_document_their_form_answers_and_errors(
    doc: dict[str, Any], path: str
) -> None:
    op = doc["paths"][path]["post"]
    body = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    form = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert "file" in form["required"]
    assert form["properties"]["file"]["format"] == "binary"
    assert set(form["properties"]) == {
        info.alias or n for n, info in AudioUpload.model_fields.items()
    }
    assert form["properties"]["response_format"]["enum"] == list(RESPONSE_FORMATS)
    assert form["properties"]["timestamp_granularities[]"]["items"]["enum"] == ["segment", "word"]
    assert form["properties"]["temperature"] == {
        **form["properties"]["temperature"],
        "minimum": 0.0,
        "maximum": 1.0,
    }
    assert {"application/json", "text/plain", "application/x-subrip", "text/vtt",
            "text/event-stream"} == set(op["responses"]["200"]["content"])  # fmt: skip
    documented = set().union(*(codes(r) for s, r in op["responses"].items() if s != "200"))
    assert documented == {
        c.value for c in (*AUDIO_ERRORS, ErrorCode.UNAUTHORIZED, ErrorCode.INTERNAL_ERROR)
    }
    for status, response in op["responses"].items():
        if status != "200":
            assert all(ERRORS[ErrorCode(c)].status == int(status) for c in codes(response))
    assert op["responses"]["429"]["headers"]["Retry-After"]["required"]
    assert "Retry-After" not in op["responses"]["503"]["headers"]
    assert op["security"] == [{"ApiKey": []}]


def test_no_route_claims_a_422_or_json_it_does_not_send(doc: dict[str, Any]) -> None:
    for item in doc["paths"].values():
        for op in item.values():
            assert "422" not in op["responses"]
            assert "500" in op["responses"]
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}
    assert codes(doc["paths"]["/v1/models/{model}"]["get"]["responses"]["404"]) == {
        "model_not_found"
    }
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_with_auth_off_no_route_claims_a_key() -> None:
    doc = TestClient(create_app(RouterSettings(auth=False))).get("/openapi.json").json()
    for item in doc["paths"].values():
        for op in item.values():
            assert "security" not in op and "401" not in op["responses"]


def test_docs_are_served_without_a_key(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_head_is_served_where_get_is_and_405_says_allow(client: TestClient) -> None:
    got = client.get("/healthz")
    head = client.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    wrong = client.put("/healthz")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
    assert wrong.headers["x-asrpool-error-code"] == "invalid_request"
    post_only = client.get("/v1/audio/transcriptions", headers={"Authorization": f"Bearer {KEY}"})
    assert post_only.status_code == 405 and post_only.headers["allow"] == "POST"
    assert client.head("/nowhere").status_code == 404


def test_a_bad_form_is_refused_by_the_router_before_it_takes_a_slot(client: TestClient) -> None:
    # No pod at all: the 400 comes from the shared form model, not from a worker.
    answer = client.post(
        "/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": ("a.wav", b"RIFF")},
        data={"temperature": "3"},
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "temperature"
