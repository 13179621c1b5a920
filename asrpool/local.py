"""``asrpool local``: the whole pool on one machine, no Kubernetes.

Starts N worker processes on free 127.0.0.1 ports, waits until each is ready,
then runs the router in this process in front of them and prints its URL (and
the API key it generated, unless ``--no-auth``). A worker that dies is started
again on its port, as a Deployment would; Ctrl-C (or SIGTERM) stops the router,
then drains and stops every worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import httpx

from asrpool_contract.credentials import WORKER_TOKEN_ENV
from asrpool_contract.settings_flags import to_argv

if TYPE_CHECKING:
    from asrpool_router.settings import RouterSettings
    from asrpool_worker.settings import WorkerSettings

log = logging.getLogger("asrpool.local")

_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass(frozen=True)
class LocalPool:
    """What ``asrpool local`` runs: ``workers`` copies of ``worker`` behind ``router``.

    The router's backends and every worker's port are chosen here; an API key and the
    worker token are made here when the settings carry none.
    """

    workers: int
    router: RouterSettings
    worker: WorkerSettings
    log_level: str = "INFO"


def worker_argv(worker: WorkerSettings, workers: int) -> list[str]:
    """The flags every worker process gets: all of ``worker``'s (settings_flags.to_argv)."""
    # N engines on a few cores: share the cores instead of each taking them all.
    threads = worker.cpu_threads or max(1, (os.cpu_count() or 1) // workers)
    return to_argv(dataclasses.replace(worker, cpu_threads=threads))


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        flags: list[str],
        token: str,
        log_level: str = "WARNING",
    ) -> None:
        self.index = index
        self.url = f"http://{host}:{port}"
        self._argv = [
            sys.executable,
            "-m",
            "asrpool",
            "--log-level",
            log_level,
            "worker",
            "--host",
            host,
            "--port",
            str(port),
            *flags,
        ]
        # In the environment, not on the command line: argv is visible to every local user.
        self._env = {**os.environ, WORKER_TOKEN_ENV: token}
        self.proc = self._start()
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        # Own process group: the terminal's Ctrl-C reaches us, and we drain workers in order.
        # If we die without that chance (SIGKILL), the kernel stops the worker too.
        return subprocess.Popen(
            self._argv, env=self._env, start_new_session=True, preexec_fn=_die_with_parent
        )

    def restart_if_dead(self) -> None:
        if self.proc.poll() is not None:
            self.restarts += 1
            log.warning(
                "worker %d exited with %s; starting it again", self.index, self.proc.returncode
            )
            self.proc = self._start()

    def stop(self, grace_s: float) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM me when my parent dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(workers: list[WorkerProcess], timeout_s: float) -> None:
    pending = {w.url: w for w in workers}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for url, w in list(pending.items()):
            if w.proc.poll() is not None:
                raise SystemExit(f"asrpool local: worker {w.index} exited with {w.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    del pending[url]
        time.sleep(0.2)
    if pending:
        raise SystemExit(
            f"asrpool local: workers not ready after {timeout_s:.0f}s: {sorted(pending)}"
        )


def _supervise(workers: list[WorkerProcess], stopping: threading.Event) -> None:
    while not stopping.wait(1.0):
        for w in workers:
            if not stopping.is_set():
                w.restart_if_dead()


def run_local(pool: LocalPool) -> int:
    from asrpool_router.server import serve

    router, worker = pool.router, pool.worker
    api_key = None
    if router.auth and not router.api_keys:
        api_key = "asrp-" + secrets.token_urlsafe(24)
        router = dataclasses.replace(router, api_keys=(api_key,))
    # Any local process could reach the workers' ports: they serve only our router. The
    # token is never printed (even --no-auth keeps it: that opens the router, not the
    # workers behind it).
    token = router.worker_token or worker.worker_token or secrets.token_urlsafe(32)

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM during start-up: still stop the workers we started

    signal.signal(signal.SIGTERM, _interrupt)
    flags = worker_argv(worker, pool.workers)
    # The router logs one line per request; the workers speak up only for what goes wrong,
    # unless asked for everything (--log-level DEBUG).
    worker_log = "DEBUG" if pool.log_level.upper() == "DEBUG" else "WARNING"
    host = router.host
    workers = [
        WorkerProcess(i, host, _free_port(host), flags, token, worker_log)
        for i in range(pool.workers)
    ]
    stopping = threading.Event()
    try:
        _wait_ready(workers, timeout_s=300)
        supervisor = threading.Thread(target=_supervise, args=(workers, stopping), daemon=True)
        supervisor.start()
        url = f"http://{host}:{router.port}"
        print(f"asrpool local: {len(workers)} workers ready; router on {url}", flush=True)
        print(f"  OpenAI base_url: {url}/v1", flush=True)
        if api_key:
            # Printed once, for the person who started the pool; never written to the log.
            print(f"  API key: {api_key}", flush=True)
        elif not router.auth:
            print("  auth: off (--no-auth)", flush=True)
        print("  Ctrl-C stops everything.", flush=True)
        # A worker runs num_workers decodes at once (each a batch of up to max_batch
        # requests); more slots would only queue inside it, where realtime chunks could not
        # overtake batch uploads.
        per_worker = worker.num_workers * max(1, worker.max_batch)
        serve(
            dataclasses.replace(
                router,
                backends=tuple(w.url for w in workers),
                worker_token=token,
                per_pod=min(router.per_pod, per_worker),
            )
        )
    except KeyboardInterrupt:
        pass
    finally:
        stopping.set()
        for w in workers:
            w.stop(grace_s=worker.drain_timeout_s)
    return 0
