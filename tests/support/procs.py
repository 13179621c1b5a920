"""Real asrpool processes on 127.0.0.1 for integration tests: start, wait ready, stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One ``asrpool …`` subprocess whose output goes to a log file (read it on failure)."""

    def __init__(
        self,
        args: list[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
        module: str = "asrpool",
        prefix: list[str] | None = None,
        host: str = "127.0.0.1",
    ):
        self.port = port
        self.host = host
        self.url = f"http://{host}:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", module, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.url} not ready after {timeout}s:\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a SIGSTOPped process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


# Two cores on CI: each worker decodes on one thread, one decode at a time.
LEAN_WORKER = ["--cpu-threads", "1", "--num-workers", "1"]
# A memory budget that fits the model and one request (whatever the model's size, below
# 200 MB). With LEAN_WORKER's one slot the worker takes one request at a time anyway and says
# worker_busy to a second: what a fleet of routers sharing a pod sees.
MEMORY_FITS_ONE_DECODE = [
    "--memory-budget-mb",
    "700",
    "--memory-per-request-mb",
    "500",
    "--memory-per-audio-second-mb",
    "0",
]
# The same memory, but two slots: a second concurrent decode is taken and then refused with
# gpu_oom, as a full GPU would refuse it.
ONE_DECODE_FITS = [*MEMORY_FITS_ONE_DECODE, "--slots", "2"]


@contextlib.contextmanager
def worker(tmp: Path, *extra: str, name: str = "worker") -> Iterator[ServerProcess]:
    port = free_port()
    proc = ServerProcess(
        ["worker", "--port", str(port), *LEAN_WORKER, *extra], port, tmp / f"{name}.log"
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def workers(tmp: Path, n: int, *extra: str) -> Iterator[list[ServerProcess]]:
    """``n`` workers started together (they load the model in parallel)."""
    procs = []
    try:
        for i in range(n):
            port = free_port()
            procs.append(
                ServerProcess(
                    ["worker", "--port", str(port), *LEAN_WORKER, *extra],
                    port,
                    tmp / f"worker-{i}.log",
                )
            )
        for p in procs:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.stop()


@contextlib.contextmanager
def router(
    tmp: Path,
    backends: list[str],
    *extra: str,
    api_keys: tuple[str, ...] = (),
    name: str | None = None,
) -> Iterator[ServerProcess]:
    """``asrpool router`` in front of ``backends``: ``--no-auth``, or these ``api_keys``."""
    port = free_port()
    # Tests of routing send the same clips again and again: without this most of them would
    # be answered from the answer cache. Tests of the cache pass --cache-mb/--cache-redis.
    args = ["router", "--port", str(port), "--cache-mb", "0"]
    env = {}
    if api_keys:
        env["ASRPOOL_API_KEYS"] = ",".join(api_keys)
    else:
        args.append("--no-auth")
    for url in backends:
        args += ["--backend", url]
    log_name = f"{name or 'router'}{'-auth' if api_keys else ''}.log"
    proc = ServerProcess([*args, *extra], port, tmp / log_name, env=env)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@dataclass
class LocalPool:
    proc: ServerProcess
    api_key: str

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def worker_pid(self, url: str) -> int:
        """The pid of the worker process serving ``url`` (a child of ``asrpool local``)."""
        port = url.rsplit(":", 1)[1]
        # Every thread's children: a restarted worker is started by the supervisor thread.
        tasks = Path(f"/proc/{self.proc.proc.pid}/task").iterdir()
        children = [c for t in tasks for c in (t / "children").read_text().split()]
        for child in children:
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                if b"worker" in argv and port.encode() in argv:
                    return int(child)
        raise LookupError(f"no worker of {self.url} serves {url}; children: {children}")


def start_local(tmp: Path, *extra: str, workers: int = 2) -> LocalPool:
    port = free_port()
    no_cache = ["--cache-mb", "0"]  # as for router() above
    proc = ServerProcess(
        ["local", "--workers", str(workers), "--port", str(port), *no_cache, *LEAN_WORKER, *extra],
        port,
        tmp / "local.log",
    )
    proc.wait_ready(timeout=120)
    match = re.search(r"API key: (\S+)", proc.log())
    return LocalPool(proc, match.group(1) if match else "")
