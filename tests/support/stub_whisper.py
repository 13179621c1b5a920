"""TEST DOUBLE: what faster-whisper's ``WhisperModel.transcribe`` returns, for stub models.

Worker tests that replace the engine's model (no GPU here, or a fault to force) answer
with this one segment, "hello", in faster-whisper's own shape.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def hello_answer() -> tuple[Any, Any]:
    """``(segments, info)`` as ``WhisperModel.transcribe`` gives them: one segment, English."""
    segment = SimpleNamespace(
        text=" hello",
        start=0.0,
        end=1.0,
        no_speech_prob=0.01,
        seek=0,
        tokens=[1],
        temperature=0.0,
        avg_logprob=-0.1,
        compression_ratio=1.0,
        words=None,
    )
    return iter([segment]), SimpleNamespace(language="en", duration=1.0)
