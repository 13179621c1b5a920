"""deploy/compose.yaml, run for real on CPU: it transcribes, and a killed worker loses nothing.

The file is the GPU host's; here it runs without its GPU reservations (no GPU, no NVIDIA
runtime) and with ASRPOOL_DEVICE=cpu, everything else as written: the images we build, the
secrets, health checks, drain, restart policy. Debian's docker-compose drives a private
dockerd (tests/cluster/dockerd.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.cluster.conftest import REPO, _script
from tests.cluster.dockerd import Engine, private_dockerd
from tests.cluster.kube import Burst, wait_for
from tests.support.speech import SCORED, word_error_rate

COMPOSE = REPO / "deploy" / "compose.yaml"
PORT = 8000


def cpu_variant(compose: dict[str, Any]) -> dict[str, Any]:
    """The same deployment without GPU reservations (Docker refuses them with no NVIDIA
    runtime); the device itself is ASRPOOL_DEVICE."""
    for service in compose["services"].values():
        reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
        reservations.pop("devices", None)
    return compose


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    tarballs = [Path(p) for p in _script("build-images.sh")]
    ours = [t for t in tarballs if t.name.startswith(("worker-", "router-"))]
    with private_dockerd(tmp_path_factory.mktemp("dockerd"), ours) as engine:
        yield engine


@pytest.fixture(scope="module")
def deployment(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Path, dict[str, str], str]]:
    work = tmp_path_factory.mktemp("compose")
    subprocess.run([str(REPO / "deploy" / "make-secrets.sh"), str(work / "secrets")], check=True)
    api_key = (work / "secrets" / "api-keys").read_text().split()[0]
    file = work / "compose.cpu.yaml"
    file.write_text(yaml.safe_dump(cpu_variant(yaml.safe_load(COMPOSE.read_text()))))
    env = {
        **engine.env,
        "COMPOSE_PROJECT_NAME": "asrpool-test",
        "ASRPOOL_DEVICE": "cpu",
        "ASRPOOL_BIND": engine.ip,
        "ASRPOOL_PORT": str(PORT),
        "ASRPOOL_SECRETS_DIR": str(work / "secrets"),
    }

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-f", str(file), *args],
            env=env, capture_output=True, text=True, timeout=400,
        )  # fmt: skip

    up = compose("up", "-d")
    assert up.returncode == 0, up.stderr
    url = f"http://{engine.ip}:{PORT}"
    try:
        wait_for(
            "the router to have a ready worker",
            lambda: _get(f"{url}/readyz") == 200,
            240,
            lambda: compose("logs", "--tail=30").stdout,
        )
        yield engine, file, env, api_key
    finally:
        compose("down", "--timeout=10")


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=3).status_code
    except httpx.HTTPError:
        return 0


def _health(engine: Engine, container: str) -> str:
    out = engine.docker("inspect", "-f", "{{.State.Health.Status}} {{.RestartCount}}", container)
    return out.stdout.strip()


def test_the_compose_deployment_transcribes_with_the_openai_sdk(deployment, speech) -> None:
    engine, _, _, api_key = deployment
    url = f"http://{engine.ip}:{PORT}"
    wait_for("both workers ready", lambda: _ready_pods(url, api_key) == 2, 240)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)
    texts = []
    for name in SCORED:
        with speech[name].path.open("rb") as f:
            texts.append(client.audio.transcriptions.create(model="whisper-1", file=f).text)
    wer = word_error_rate(" ".join(speech[n].text for n in SCORED), " ".join(texts))
    assert wer < 0.15, texts
    # The workers take work from the router only, here too.
    worker = engine.docker("ps", "-q", "--filter", "name=worker-0").stdout.split()[0]
    ip = engine.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", worker
    ).stdout.strip()
    probe = engine.docker(
        "exec", worker, "python3", "-c",
        f"import urllib.request as u, urllib.error as e\n"
        f"try: u.urlopen('http://{ip}:9000/v1/models', timeout=5)\n"
        f"except e.HTTPError as x: print(x.code)",
    )  # fmt: skip
    assert probe.stdout.strip() == "401", probe


def _ready_pods(url: str, api_key: str) -> int:
    try:
        stats = httpx.get(f"{url}/stats", headers={"Authorization": f"Bearer {api_key}"}).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return sum(p["ready"] for pool in stats["pools"] for p in pool["pods"])


def test_docker_kill_of_a_worker_mid_burst_fails_no_request(deployment, speech) -> None:
    engine, _, _, api_key = deployment
    url = f"http://{engine.ip}:{PORT}"
    wait_for("both workers ready", lambda: _ready_pods(url, api_key) == 2, 240)
    (victim,) = engine.docker("ps", "-q", "--filter", "name=worker-0").stdout.split()
    clip = speech["fox"]

    def back() -> bool:
        return _health(engine, victim).startswith("healthy") and _ready_pods(url, api_key) == 2

    with Burst(f"{url}/v1", api_key, clip.path, "whisper-1", clients=4) as burst:
        burst.wait_answers(4, 120)
        # SIGKILL: no drain; the requests in flight there die with it and go to worker-1.
        engine.docker("kill", victim)
        burst.wait_answers(len(burst.answers) + 8, 180)
        # Docker counts `docker kill` as a stop by hand (no restart policy applies): start it
        # again, as its operator would, and the router sends it work once it is ready.
        engine.docker("start", victim)
        wait_for("the killed worker to be back", back, 240)
        # A crash is another matter: the restart policy brings the worker back by itself.
        pid = int(engine.docker("inspect", "-f", "{{.State.Pid}}", victim).stdout)
        os.kill(pid, signal.SIGKILL)
        wait_for(
            "Docker to restart the crashed worker",
            lambda: int(_health(engine, victim).split()[1]) >= 1 and back(),
            240,
        )
        burst.wait_answers(len(burst.answers) + 4, 120)
    assert burst.failures == [], burst.failures[:5]
    worst = max(word_error_rate(clip.text, a.text) for a in burst.answers)
    assert worst < 0.3
    stats = httpx.get(f"{url}/stats", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert stats["active_tasks"] == 0 and stats["queue_depth"] == 0, stats
