"""A peer for bench/fault_matrix.py: LiteLLM's Router, retries and cooldowns on.

Runs in its own virtualenv (LiteLLM pins many packages; ``bench/fault_matrix.py`` makes
one under ~/.cache/asrpool/bench). It sends the same burst as the other peers to the
same backends, as a LiteLLM user would configure it: every backend a deployment of one
model group, ``num_retries`` (retries on other deployments), ``allowed_fails`` before a
deployment cools down for ``cooldown_time`` seconds, a per-call timeout. Prints one JSON
line: latencies of the successes and the errors of the failures.

Run: python litellm_client.py --backend URL [--backend URL …] --clip WAV [--clip WAV …]
     --requests N --clients C [--timeout S]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from pathlib import Path

import litellm
from litellm import Router


async def run(args: argparse.Namespace, clips: list[bytes]) -> dict[str, object]:
    router = Router(
        model_list=[
            {
                "model_name": "whisper",
                "litellm_params": {
                    "model": "openai/whisper-1",
                    "api_base": f"{url}/v1",
                    "api_key": "unused",
                },
            }
            for url in args.backend
        ],
        num_retries=args.retries,
        allowed_fails=1,
        cooldown_time=5,
        timeout=args.timeout,
        routing_strategy="least-busy" if args.least_busy else "simple-shuffle",
    )
    semaphore = asyncio.Semaphore(args.clients)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        audio = io.BytesIO(clips[i % len(clips)])
        audio.name = "speech.wav"
        async with semaphore:
            started = time.monotonic()
            try:
                await router.atranscription(model="whisper", file=audio)
            except Exception as exc:  # every failure is a result here
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                return
            latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.requests)))
    return {"latencies": latencies, "errors": errors, "wall_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", required=True)
    parser.add_argument("--clip", action="append", required=True)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--least-busy", action="store_true")
    args = parser.parse_args()
    litellm.suppress_debug_info = True
    clips = [Path(c).read_bytes() for c in args.clip]
    print(json.dumps(asyncio.run(run(args, clips))))


if __name__ == "__main__":
    main()
