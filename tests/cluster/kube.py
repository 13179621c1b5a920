"""Driving a real cluster from tests: kubectl and helm, port-forwards, waits, a load generator.

``Kube`` runs the built ``kubectl`` and ``helm`` against one kubeconfig (helm's homes in a
scratch directory). ``port_forward`` is ``kubectl port-forward`` to a local port it picks,
for as long as a ``with`` block runs. ``Burst`` keeps N clients sending transcriptions
through the router until stopped and records every answer: the disruption tests read its
failures. Used by ``tests/cluster``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

T = TypeVar("T")


class KubectlError(subprocess.CalledProcessError):
    """kubectl (or helm) exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` (every 0.5 s) until it returns something truthy; fail after ``timeout``
    with ``what`` and what ``diagnose`` says then."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            why = diagnose() if diagnose else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{why}", False)
        time.sleep(0.5)


class Kube:
    def __init__(self, bin_dir: Path, kubeconfig: Path, workdir: Path) -> None:
        self.bin = bin_dir
        self.kubeconfig = kubeconfig
        self.workdir = workdir

    @property
    def env(self) -> dict[str, str]:
        helm = self.workdir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def run(
        self,
        tool: str,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        result = subprocess.run(
            argv, env=self.env, input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kw)

    def helm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, **kw)

    def get(self, namespace: str, *what: str) -> Any:
        """``kubectl get … -o json`` as data, or None when it does not exist."""
        r = self.kubectl("-n", namespace, "get", *what, "-o", "json", check=False)
        if r.returncode != 0:
            assert "NotFound" in r.stderr, r.stderr
            return None
        return json.loads(r.stdout)

    def apply(self, namespace: str, manifest: dict[str, Any]) -> None:
        self.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(namespace, "pods", "-l", selector)["items"]
        return items

    def describe(self, namespace: str, *what: str) -> str:
        """For failure messages: `kubectl describe` and recent events."""
        out = self.kubectl("-n", namespace, "describe", *what, check=False).stdout
        events = self.kubectl(
            "-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False
        ).stdout
        return f"{out[-4000:]}\n--- events\n{events[-3000:]}"


@contextlib.contextmanager
def port_forward(kube: Kube, namespace: str, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward TARGET :PORT`` on 127.0.0.1; yields the local port."""
    proc = subprocess.Popen(
        [str(kube.bin / "kubectl"), "-n", namespace, "port-forward", "--address=127.0.0.1",
         target, f":{port}"],
        env=kube.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> PORT"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"kubectl port-forward {target}: {line!r} {err}")
        # Keep reading its output, so a full pipe never blocks it.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield int(match.group(1))
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@dataclass
class Answer:
    ok: bool
    text: str  # the transcript, or what went wrong
    started: float
    seconds: float


@dataclass
class Burst:
    """``clients`` threads sending ``clip`` to the router again and again until ``stop()``.

    No client retries anything (the SDK's own retries are off): every failure counts. Each
    request says ``Cache-Control: no-store``: the same clip again would otherwise be answered
    from the router's answer cache, and no pod would decode anything.
    """

    base_url: str
    api_key: str
    clip: Path
    model: str
    clients: int = 4
    max_requests: int = 2000  # a bound on the loop, far above what a test sends
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Burst:
        for _ in range(self.clients):
            t = threading.Thread(target=self._client, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 120) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)

    def _client(self) -> None:
        client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=120
        )
        audio = self.clip.read_bytes()
        while not self._stop.is_set():
            with self._lock:
                if len(self.answers) >= self.max_requests:
                    return
            started = time.monotonic()
            try:
                text = client.audio.transcriptions.create(
                    model=self.model,
                    file=(self.clip.name, audio),
                    extra_headers={"Cache-Control": "no-store"},
                ).text
                answer = Answer(True, text, started, time.monotonic() - started)
            except Exception as e:
                answer = Answer(False, f"{type(e).__name__}: {e}", started, 0.0)
            with self._lock:
                self.answers.append(answer)

    def wait_answers(self, n: int, timeout: float) -> None:
        wait_for(f"{n} answers", lambda: len(self.answers) >= n, timeout)

    @property
    def failures(self) -> list[str]:
        return [a.text for a in self.answers if not a.ok]


def pod_ip_names(pods: Sequence[dict[str, Any]]) -> dict[str, str]:
    return {p["status"].get("podIP", ""): p["metadata"]["name"] for p in pods}
