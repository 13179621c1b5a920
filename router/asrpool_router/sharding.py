"""A long upload decoded across the pool: cut, send the pieces at once, join the answers.

The shell around ``logic.shards``. The router decodes the upload (``asrpool_contract.audio``), cuts
it at pauses into pieces of about 30 s, and sends each piece as its own request at batch
priority through ``PoolRunner.forward`` (so every piece has the pool's retries: a piece lost
with its pod is decoded elsewhere), asking for ``verbose_json`` with words when the client
wants them. The answers are joined and rendered in the format the client asked for, with
the shape an answer from one pod has. One piece that fails for good fails the request,
and the others are cancelled (their slots come back).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging

import numpy as np

from asrpool_contract.audio import SAMPLE_RATE, wav_bytes
from asrpool_contract.formats import FORMATS, from_verbose

from .dispatch import Job, PoolRunner
from .logic.errors import AttemptResult
from .logic.request import Priority
from .logic.shards import Piece, ShardPolicy, join, plan
from .transport import Answer, BufferedUpload

log = logging.getLogger(__name__)

FRAME = 480  # 30 ms at 16 kHz, the realtime VAD's frame
# Fields of the client's request that each piece asks its own way.
_PIECE_OWNS = ("response_format", "stream", "timestamp_granularities[]", "timestamp_granularities")


def frame_levels(samples: np.ndarray) -> list[float]:
    """RMS loudness of each 30 ms frame."""
    usable = samples.size // FRAME * FRAME
    if usable == 0:
        return []
    frames = samples[:usable].astype(np.float32).reshape(-1, FRAME)
    return [float(x) for x in np.sqrt(np.mean(frames * frames, axis=1))]


def wants_words(fields: list[tuple[str, str]]) -> bool:
    return any(k.startswith("timestamp_granularities") and v == "word" for k, v in fields)


async def forward_sharded(
    runner: PoolRunner,
    job: Job,
    samples: np.ndarray,
    policy: ShardPolicy,
) -> Answer | None:
    """The joined answer of ``samples`` cut into pieces; None when it is too short to cut."""
    pieces = plan(frame_levels(samples), FRAME / SAMPLE_RATE, policy)
    if len(pieces) < 2:
        return None
    words = wants_words(job.upload.fields)
    fields = [(k, v) for k, v in job.upload.fields if k not in _PIECE_OWNS]
    fields.append(("response_format", "verbose_json"))
    if words:
        fields.append(("timestamp_granularities[]", "word"))
    tasks = [
        asyncio.create_task(runner.forward(_piece_job(job, samples, p, fields))) for p in pieces
    ]
    log.info(
        "%.0fs of audio cut into %d pieces for %s",
        samples.size / SAMPLE_RATE,
        len(pieces),
        runner.model,
    )
    try:
        answers = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()  # a piece failed (or our client left): the rest stop, slots back
        await asyncio.gather(*tasks, return_exceptions=True)
    joined = join(
        [(p, from_verbose(json.loads(a.content))) for p, a in zip(pieces, answers, strict=True)]
    )
    fmt = FORMATS[job.response_format]
    rendered = fmt.render(joined, words)
    content = json.dumps(rendered).encode() if isinstance(rendered, dict) else rendered.encode()
    return Answer(AttemptResult(status=200), 200, content, fmt.media_type)


def _piece_job(job: Job, samples: np.ndarray, piece: Piece, fields: list[tuple[str, str]]) -> Job:
    start, end = round(piece.start_s * SAMPLE_RATE), round(piece.end_s * SAMPLE_RATE)
    wav = wav_bytes(samples[start:end])
    return Job(
        path=job.path,
        upload=BufferedUpload(
            f"piece-{piece.index}.wav", "audio/wav", io.BytesIO(wav), len(wav), fields
        ),
        audio_seconds=piece.seconds,
        # Interactive work goes first: a long file's pieces fill the slots it leaves.
        priority=Priority.BATCH,
        response_format="verbose_json",
    )
