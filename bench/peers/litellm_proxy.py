"""A peer: LiteLLM's proxy (``litellm --config``), every backend a deployment of one model.

Started from LiteLLM's own virtualenv (``bench/peers/venvs.py``) on 127.0.0.1, with the
router settings a LiteLLM user would turn on for a pool: ``num_retries`` (on other
deployments), ``allowed_fails`` before a deployment cools down for ``cooldown_time``
seconds, a per-call timeout. The proxy refuses to start without a master key; clients send
it as ``Authorization: Bearer`` (``BENCH_KEY``). Used by ``router_overhead.py`` (one
backend: the proxy's own cost) and ``fault_matrix.py`` (every backend of a scenario).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.peers import venvs
from bench.peers.process import peer_process
from tests.support.procs import free_port

PEER = venvs.PEERS["litellm"]
BENCH_KEY = "sk-asrpool-bench-0123456789abcdef"
DEPLOYMENT = """
  - model_name: whisper-1
    litellm_params:
      model: openai/whisper-1
      api_base: {url}/v1
      api_key: unused
      timeout: {timeout}
    model_info:
      mode: audio_transcription
"""
CONFIG = """
model_list:{deployments}
router_settings:
  num_retries: {retries}
  allowed_fails: 1
  cooldown_time: 5
  routing_strategy: simple-shuffle
general_settings:
  master_key: {key}
"""


@contextlib.contextmanager
def litellm_proxy(
    tmp: Path,
    backends: list[str],
    *,
    name: str = "litellm",
    retries: int = 3,
    timeout_s: float = 30,
) -> Iterator[str]:
    """The proxy's URL, in front of ``backends``; stopped on exit."""
    port = free_port()
    config = tmp / f"{name}.yaml"
    deployments = "".join(DEPLOYMENT.format(url=u, timeout=timeout_s) for u in backends)
    config.write_text(CONFIG.format(deployments=deployments, retries=retries, key=BENCH_KEY))
    cmd = [str(PEER.bin("litellm")), "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with peer_process(cmd, tmp / f"{name}.log") as proc:
        url = f"http://127.0.0.1:{port}"
        proc.wait_http(url + "/health/liveliness", timeout_s=300)
        yield url
