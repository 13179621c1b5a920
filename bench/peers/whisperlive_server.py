"""A peer for bench/realtime_peers.py: WhisperLive's server, faster-whisper backend, on CPU.

Runs in WhisperLive's own virtualenv (``bench/peers/venvs.py``). The wheel ships the server
class but not the repository's ``run_server.py``, so this is that script, reduced to what the
benchmark sets: 127.0.0.1, the faster_whisper backend, a local CTranslate2 model directory
(``faster_whisper_custom_model_path``: every client gets that model, nothing is downloaded),
``max_clients``. As ``run_server.py`` does, OpenMP gets one thread (``--omp-threads``) before
CTranslate2 loads. WhisperLive picks int8 on a machine without CUDA.

Run: python whisperlive_server.py --port P --model DIR [--max-clients 8] [--single-model]
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True, help="a CTranslate2 Whisper directory")
    parser.add_argument("--max-clients", type=int, default=8)
    parser.add_argument("--omp-threads", type=int, default=1)
    parser.add_argument("--single-model", action="store_true", help="one model for all clients")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.omp_threads))
    from whisper_live.server import TranscriptionServer

    TranscriptionServer().run(
        "127.0.0.1",
        port=args.port,
        backend="faster_whisper",
        faster_whisper_custom_model_path=args.model,
        single_model=args.single_model,
        max_clients=args.max_clients,
        max_connection_time=3600,
    )


if __name__ == "__main__":
    main()
