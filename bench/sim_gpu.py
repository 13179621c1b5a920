"""SIMULATED GPU POD for benchmarks: our real worker app with an engine that only waits.

Two CPU cores cannot show what eight GPUs do, so this stands in for a GPU pod: the whole
worker (its HTTP surface, slots, memory guard, load reports, formats) is the real one;
only the engine is replaced by one that sleeps ``audio seconds / --speed`` (a GPU decodes
many times faster than real time) and answers with one segment per 10 s of audio. Its
numbers are labelled "simulated" wherever they are shown. Never used by the tests.

Run: python bench/sim_gpu.py --port P [--speed 30] [--slots 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asrpool_contract.http_server import ServerTimeouts, serve_http
from asrpool_contract.transcript import Segment, Transcript, Word
from asrpool_worker.app import create_app
from asrpool_worker.engine import DecodeOptions, WhisperEngine
from asrpool_worker.settings import WorkerSettings

SAMPLE_RATE = 16_000


class WaitingEngine(WhisperEngine):
    """Decodes nothing: waits as long as a GPU of the given speed would take."""

    def __init__(self, speed: float) -> None:  # no model, no super().__init__
        self.speed = speed
        self.model_dir = "simulated"
        self.multilingual = False

    def warm_up(self) -> None:
        return None

    def unload(self) -> None:
        return None

    def stream(
        self, samples: np.ndarray, opts: DecodeOptions
    ) -> tuple[Transcript, Iterator[Segment]]:
        offset = opts.offset_s
        seconds = samples.size / SAMPLE_RATE - offset
        head = Transcript("en", offset + seconds, [], opts.task)
        return head, self._segments(offset, seconds)

    def _segments(self, offset: float, seconds: float) -> Iterator[Segment]:
        index, start = 0, 0.0
        while start < seconds:
            end = min(seconds, start + 10.0)
            time.sleep((end - start) / self.speed)
            words = [Word(" simulated", offset + start, offset + end)]
            yield Segment(index, offset + start, offset + end, " simulated", words=words)
            index, start = index + 1, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--slots", type=int, default=1)
    args = parser.parse_args()
    settings = WorkerSettings(port=args.port, num_workers=args.slots, slots=args.slots)
    app = create_app(settings, "simulated", lambda s: WaitingEngine(args.speed))
    serve_http(app, host="127.0.0.1", port=args.port, timeouts=ServerTimeouts())


if __name__ == "__main__":
    main()
