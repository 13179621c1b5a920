"""The worker's Prometheus metrics, on a registry the app is given (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "asrpool_worker_requests",
            "Transcription requests by endpoint and result code.",
            ["endpoint", "code"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "asrpool_worker_in_flight", "Requests being decoded now.", registry=registry
        )
        self.audio_seconds = Counter(
            "asrpool_worker_audio_seconds", "Seconds of audio transcribed.", registry=registry
        )
        self.decode_seconds = Histogram(
            "asrpool_worker_decode_seconds",
            "Wall time of one decode.",
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
        )
        self.busy_rejections = Counter(
            "asrpool_worker_busy_rejections",
            "Requests refused at once (worker_busy) because every slot was taken.",
            registry=registry,
        )
        self.oom_rejections = Counter(
            "asrpool_worker_oom_rejections",
            "Requests refused with gpu_oom (memory guard or a real CUDA OOM).",
            registry=registry,
        )
        self.memory_reserved_mb = Gauge(
            "asrpool_worker_memory_reserved_mb",
            "Memory reserved by requests in flight (estimate).",
            registry=registry,
        )
        self.engine_reloads = Counter(
            "asrpool_worker_engine_reloads",
            "Engine reloads after lone CUDA OOMs (memory not coming back), by result.",
            ["result"],
            registry=registry,
        )
        self.recovering = Gauge(
            "asrpool_worker_recovering",
            "1 while the worker drains and reloads its engine after lone OOMs, else 0.",
            registry=registry,
        )
        self.batch_windows = Histogram(
            "asrpool_worker_batch_windows",
            "Windows decoded in one batched engine call (--max-batch), by why it was sent: "
            "full, all_arrived (nothing else on its way) or window (the wait ran out).",
            ["reason"],
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
