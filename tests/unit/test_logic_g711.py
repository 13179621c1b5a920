"""G.711 decoding matches the reference codec byte for byte."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from asrpool_router.logic import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop leaves the stdlib in 3.13
    audioop = pytest.importorskip("audioop")

EVERY_BYTE = bytes(range(256))


def test_ulaw_matches_the_standard_librarys_codec():
    want = np.frombuffer(audioop.ulaw2lin(EVERY_BYTE, 2), dtype="<i2")
    np.testing.assert_array_equal(g711.decode_ulaw(EVERY_BYTE), want)


def test_alaw_matches_the_standard_librarys_codec():
    want = np.frombuffer(audioop.alaw2lin(EVERY_BYTE, 2), dtype="<i2")
    np.testing.assert_array_equal(g711.decode_alaw(EVERY_BYTE), want)


def test_a_tone_survives_encoding_and_decoding():
    t = np.arange(800) / g711.G711_RATE
    tone = (12000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    for encode, decode in (
        (audioop.lin2ulaw, g711.decode_ulaw),
        (audioop.lin2alaw, g711.decode_alaw),
    ):
        back = decode(encode(tone.tobytes(), 2)).astype(np.float64)
        error = np.sqrt(np.mean((back - tone) ** 2)) / np.sqrt(np.mean(tone.astype(float) ** 2))
        assert error < 0.03  # G.711's ~38 dB SNR on a loud tone
