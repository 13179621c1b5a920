"""Benchmark: the router's own cost on the hot path, against nginx and LiteLLM's proxy, same run.

The backend answers at once (nginx returning a fixed transcript), so what is measured is
the proxy in front of it. wrk posts the same multipart upload (a 1 s wav and a model field,
32 KB, what a realtime chunk is) at 1, 10, 100 and 500 concurrent connections. Peers:

* ``backend``: nginx itself, no proxy (the floor);
* ``nginx``: nginx as a reverse proxy (upstream keep-alive);
* ``asrpool``: ``asrpool router`` (one process, ``--per-pod 64``);
* ``asrpool x2``: two router processes, each given half the connections (two wrk runs at
  once, summed): routers scale out, they never share a queue;
* ``litellm``: LiteLLM's proxy (``litellm --config``, retries and cooldowns on), in the
  virtualenv bench/fault_matrix.py makes under ~/.cache/asrpool/bench (``litellm[proxy]``).

Everything listens on 127.0.0.1; wrk runs bounded in time (``--seconds`` a level).
Needs Debian's wrk and nginx (``apt-get install wrk nginx-light``).

Run: .venv/bin/python bench/router_overhead.py [--seconds 8] [--peer NAME …] [--clients N …]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import venvs
from bench.peers.litellm_proxy import BENCH_KEY, litellm_proxy
from bench.results import Results
from tests.support.procs import ServerProcess, free_port

LITELLM_PEER = venvs.PEERS["litellm"]
LITELLM = LITELLM_PEER.bin("litellm")
BOUNDARY = "----asrpoolbench"
PATH = "/v1/audio/transcriptions"

NGINX_COMMON = """
worker_processes 1;
error_log {dir}/error-{name}.log;
pid {dir}/{name}.pid;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body-{name};
  proxy_temp_path {dir}/proxy-{name};
  fastcgi_temp_path {dir}/fcgi-{name}; uwsgi_temp_path {dir}/uwsgi-{name};
  scgi_temp_path {dir}/scgi-{name};
  client_max_body_size 30m;
  # Uploads stay in memory: nginx's workers may not write temp files in our directory.
  client_body_buffer_size 1m;
  {body}
}}
"""
BACKEND = """
  # A connection the proxies keep alive must not be closed under them.
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port};
    location = /v1/models {{ default_type application/json;
      return 200 '{{"object":"list","data":[{{"id":"whisper-1","object":"model"}}]}}'; }}
    location = /readyz {{ default_type application/json; return 200 '{{"status":"ready"}}'; }}
    location /v1/audio/ {{ default_type application/json; return 200 '{{"text":"hello world"}}'; }}
  }}
"""
PROXY = """
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://backend; proxy_http_version 1.1;
      proxy_set_header Connection ""; }}
  }}
"""


@dataclass
class Row:
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0


def upload_body() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\0\0" * 16_000)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return head + buf.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()


@contextlib.contextmanager
def nginx(tmp: Path, name: str, body: str, port: int) -> Iterator[str]:
    conf = tmp / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(dir=tmp, name=name, body=body))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/readyz" if name == "backend" else url + "/v1/models")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def wait_for(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} never answered")


def wrk(url: str, clients: int, seconds: int, script: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["wrk", "-t", "1", "-c", str(clients), "-d", f"{seconds}s", "--timeout", "5s",
         "--latency", "-s", str(script), url + PATH],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def parse(out: str) -> Row:
    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return Row(float(rps.group(1)) if rps else 0.0, ms("50"), ms("99"), errors)


def measure(urls: list[str], clients: int, seconds: int, script: Path) -> Row:
    """wrk against each URL at once, ``clients`` shared between them; rates summed."""
    each = max(1, clients // len(urls))
    runs = [wrk(url, each, seconds, script) for url in urls]
    rows = [parse(r.communicate(timeout=seconds + 60)[0]) for r in runs]
    return Row(
        sum(r.rps for r in rows),
        max(r.p50_ms for r in rows),
        max(r.p99_ms for r in rows),
        sum(r.errors for r in rows),
    )


@contextlib.contextmanager
def peer(name: str, tmp: Path, backend: str) -> Iterator[list[str]]:
    if name == "backend":
        yield [backend]
    elif name == "nginx":
        port = free_port()
        body = PROXY.format(backend=backend.rsplit(":", 1)[1], port=port)
        with nginx(tmp, "proxy", body, port) as url:
            yield [url]
    elif name in ("asrpool", "asrpool x2"):
        with contextlib.ExitStack() as stack:
            urls = []
            for i in range(2 if name == "asrpool x2" else 1):
                port = free_port()
                args = ["--log-level", "WARNING", "router", "--port", str(port), "--no-auth"]
                args += ["--backend", backend, "--per-pod", "64", "--max-queue", "10000"]
                proc = ServerProcess(args, port, tmp / f"router-{i}.log")
                stack.callback(proc.stop)
                proc.wait_ready()
                urls.append(proc.url)
            yield urls
    elif name == "litellm":
        if not LITELLM.exists():
            raise SystemExit(f"no {LITELLM}: python -m bench.peers.venvs litellm")
        with litellm_proxy(tmp, [backend]) as url:
            yield [url]
    else:
        raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, action="append")
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    parser.add_argument(
        "--no-install-peers",
        dest="install_peers",
        action="store_false",
        help="a peer whose virtualenv is missing is reported unavailable, not installed",
    )
    parser.add_argument(
        "--peer",
        action="append",
        choices=["backend", "nginx", "asrpool", "asrpool x2", "litellm"],
    )
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install wrk nginx-light")
    levels = args.clients or [1, 10, 100, 500]
    peers = args.peer or ["backend", "nginx", "asrpool", "asrpool x2", "litellm"]
    results = Results("router_overhead", {"seconds": args.seconds, "clients": levels})
    results.notes.append(
        "wrk posts a 32 KB multipart upload (a 1 s wav) through each proxy to nginx answering "
        "a fixed transcript at once: what is measured is the proxy."
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "body.bin").write_bytes(upload_body())
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
            f'wrk.headers["Authorization"] = "Bearer {BENCH_KEY}"\n'
            f'local f = io.open("{tmp / "body.bin"}", "rb"); wrk.body = f:read("*all"); f:close()\n'
        )
        port = free_port()
        with nginx(tmp, "backend", BACKEND.format(port=port), port) as backend:
            print(f"{'peer':<11} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} errors")
            for name in peers:
                if name == "litellm":
                    ok, why = venvs.ensure(LITELLM_PEER, install=args.install_peers)
                    if not ok:
                        results.peer_unavailable(name, why)
                        print(f"{name:<11} unavailable: {why}", flush=True)
                        continue
                with peer(name, tmp, backend) as urls:
                    measure(urls, 10, 2, script)  # warm connections and caches
                    for clients in levels:
                        row = measure(urls, clients, args.seconds, script)
                        results.add(
                            name,
                            {"clients": clients},
                            {"rps": row.rps, "p50_ms": row.p50_ms, "p99_ms": row.p99_ms,
                             "errors": row.errors},
                        )  # fmt: skip
                        results.write(args.json)
                        print(
                            f"{name:<11} {clients:>7} {row.rps:8.0f} {row.p50_ms:8.2f} "
                            f"{row.p99_ms:8.2f} {row.errors}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
