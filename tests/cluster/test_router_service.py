"""Users' path: the router Service through `kubectl port-forward`, `helm test`, `helm upgrade`."""

from __future__ import annotations

import base64
import concurrent.futures
from typing import Any

import httpx
import openai

from tests.cluster.conftest import CHART, NAMESPACE, RELEASE, ClusterUnderTest, Router, api_key
from tests.cluster.kube import port_forward, wait_for
from tests.support.speech import SCORED, word_error_rate


def test_the_official_openai_sdk_transcribes_through_the_router_service(
    router: Router, speech
) -> None:
    client = openai.OpenAI(base_url=f"{router.url}/v1", api_key=router.api_key, max_retries=0)

    def one(name: str) -> str:
        with speech[name].path.open("rb") as f:
            # whisper-1: the pool's alias, what OpenAI's own examples send.
            return client.audio.transcriptions.create(model="whisper-1", file=f).text

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        texts = list(ex.map(one, SCORED))
    wer = word_error_rate(" ".join(speech[n].text for n in SCORED), " ".join(texts))
    print(f"cluster WER over {len(SCORED)} sentences: {wer:.3f}")
    assert wer < 0.15, texts
    models = {m.id for m in client.models.list()}
    assert "tiny.en" in models
    stats = httpx.get(f"{router.url}/stats", headers=router.auth).json()
    assert stats["total_tasks"] >= len(SCORED)
    pool = next(p for p in stats["pools"] if p["model"] == "tiny.en")
    assert sorted(p["ready"] for p in pool["pods"]) == [True, True]


def test_helm_test_passes(cluster: ClusterUnderTest, router: Router) -> None:
    r = cluster.kube.helm("test", RELEASE, "-n", NAMESPACE, "--logs", "--timeout=180s", timeout=240)
    assert "Phase:          Succeeded" in r.stdout, r.stdout
    assert '"status":"ready"' in r.stdout.replace(" ", ""), r.stdout


def test_helm_upgrade_keeps_the_api_key_and_the_worker_token(
    cluster: ClusterUnderTest, router: Router, speech
) -> None:
    kube = cluster.kube

    def worker_token() -> str:
        secret = kube.get(NAMESPACE, "secret", f"{RELEASE}-worker-token")
        return base64.b64decode(secret["data"]["token"]).decode()

    key, token = api_key(kube), worker_token()
    kube.helm(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
        "--set", "router.logLevel=DEBUG", "--wait", "--timeout=240s", timeout=300,
    )  # fmt: skip
    assert api_key(kube) == key
    assert worker_token() == token
    # The upgraded routers (new pods: their environment changed) still serve with the old key.
    replicas = kube.get(NAMESPACE, "deployment", f"{RELEASE}-router")["spec"]["replicas"]

    def upgraded() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in kube.pods(NAMESPACE, "app.kubernetes.io/component=router")
            if "deletionTimestamp" not in p["metadata"]
        ]
        levels = [
            {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env", [])}.get(
                "ASRPOOL_LOG_LEVEL"
            )
            for p in pods
        ]
        return pods if len(pods) == replicas and set(levels) == {"DEBUG"} else None

    wait_for("every router pod replaced by the upgrade", upgraded, 120)
    with port_forward(kube, NAMESPACE, f"svc/{RELEASE}-router", 8000) as port:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        with speech["fox"].path.open("rb") as f:
            text = client.audio.transcriptions.create(model="tiny.en", file=f).text
    assert word_error_rate(speech["fox"].text, text) < 0.3, text
