"""SIMULATED GPU POD for benchmarks: our real worker app with an engine that only waits.

Two CPU cores cannot show what eight GPUs do, so this stands in for a GPU pod: the whole
worker (its HTTP surface, slots, memory guard, load reports, formats) is the real one;
only the engine is replaced by one that sleeps ``audio seconds / --speed`` (a GPU decodes
many times faster than real time) and answers with one segment per 10 s of audio. Its
numbers are labelled "simulated" wherever they are shown. Never used by the tests.

Run: python bench/sim_gpu.py --port P [--speed 30] [--slots 1] [--parallel 1]
     python bench/sim_gpu.py --ports P1,P2,… [--speed 30]   (several pods in one process: a
     simulated pool of 64 pods in 64 interpreters would not fit beside the rest on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio.to_thread
import uvicorn
from fastapi import FastAPI

from asrpool_contract.http_server import BodyGuard, ServerTimeouts, http_protocol, serve_http
from asrpool_contract.transcript import Segment, Transcript, Word
from asrpool_worker.app import create_app
from asrpool_worker.engine import DecodeOptions, WhisperEngine
from asrpool_worker.settings import WorkerSettings

SAMPLE_RATE = 16_000


class WaitingEngine(WhisperEngine):
    """Decodes nothing: waits as long as a GPU of the given speed would take."""

    def __init__(self, speed: float, parallel: int = 1) -> None:  # no model, no super().__init__
        self.speed = speed
        # A GPU runs ``parallel`` decodes at once; a pod given more slots queues the rest
        # (what a plain model server does), it does not decode them in parallel for free.
        self.gpu = threading.Semaphore(parallel)
        self._batcher = None  # no cross-request batching in a simulated pod
        self.model_dir = "simulated"
        self.multilingual = False

    def warm_up(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def transcribe(self, samples: np.ndarray, opts: DecodeOptions) -> Transcript:
        """The whole transcript at once (json answers, live drafts and finals)."""
        head, segments = self.stream(samples, opts)
        return Transcript(head.language, head.duration, list(segments), opts.task)

    def stream(
        self, samples: np.ndarray, opts: DecodeOptions
    ) -> tuple[Transcript, Iterator[Segment]]:
        offset = opts.offset_s
        seconds = samples.size / SAMPLE_RATE - offset
        head = Transcript("en", offset + seconds, [], opts.task)
        return head, self._waits(offset, seconds)

    def _waits(self, offset: float, seconds: float) -> Iterator[Segment]:
        index, start = 0, 0.0
        while start < seconds:
            end = min(seconds, start + 10.0)
            with self.gpu:
                time.sleep((end - start) / self.speed)
            words = [Word(" simulated", offset + start, offset + end)]
            yield Segment(index, offset + start, offset + end, " simulated", words=words)
            index, start = index + 1, end


def app_for(port: int, slots: int, speed: float, parallel: int) -> FastAPI:
    settings = WorkerSettings(port=port, num_workers=parallel, slots=slots)
    return create_app(settings, "simulated", lambda s: WaitingEngine(speed, parallel))


async def serve_many(ports: list[int], slots: int, speed: float, parallel: int) -> None:
    """Every pod its own app and uvicorn server, all in this process's event loop."""
    # Each pod's waits run in worker threads: room for all of them, not anyio's default 40.
    anyio.to_thread.current_default_thread_limiter().total_tokens = max(40, 8 * len(ports))
    timeouts = ServerTimeouts()
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                BodyGuard(app_for(port, slots, speed, parallel), timeouts.body_s),
                host="127.0.0.1",
                port=port,
                http=http_protocol(timeouts.header_s),
                log_config=None,
                log_level="warning",
                access_log=False,
            )
        )
        for port in ports
    ]
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--ports", help="comma-separated: one pod each, in this process")
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--slots", type=int, default=1, help="requests a pod takes at once")
    parser.add_argument(
        "--parallel", type=int, default=1, help="of those, decoded at once (the rest wait)"
    )
    args = parser.parse_args()
    parallel = min(args.parallel, args.slots)
    if args.ports:
        ports = [int(p) for p in args.ports.split(",")]
        asyncio.run(serve_many(ports, args.slots, args.speed, parallel))
        return
    if args.port is None:
        parser.error("--port or --ports")
    app = app_for(args.port, args.slots, args.speed, parallel)
    serve_http(app, host="127.0.0.1", port=args.port, timeouts=ServerTimeouts())


if __name__ == "__main__":
    main()
