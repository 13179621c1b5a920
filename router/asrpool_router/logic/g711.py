"""G.711 (μ-law and A-law, 8 kHz telephone audio) decoded to linear PCM16.

The Realtime API's ``audio/pcmu`` and ``audio/pcma`` (beta: ``g711_ulaw``, ``g711_alaw``)
carry one byte a sample; telephony bridges (SIP, Twilio media streams) send them as they
get them. Each byte maps to one 16-bit value (ITU-T G.711, tables 1a and 2a), so decoding
is a lookup in a 256-entry table built once from the standard's expansion rule.

Pure: numpy only.
"""

from __future__ import annotations

import numpy as np

# The rate G.711 is defined at; ``pcm.to_whisper_rate`` takes it to 16 kHz.
G711_RATE = 8_000


def _ulaw_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        u = ~byte & 0xFF  # stored inverted, so silence is not a run of zero bytes
        magnitude = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)
        table[byte] = -(magnitude - 0x84) if u & 0x80 else magnitude - 0x84
    return table


def _alaw_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        a = byte ^ 0x55  # even bits inverted on the line (the standard's alternate-bit rule)
        exponent, mantissa = (a >> 4) & 0x07, a & 0x0F
        magnitude = (
            (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
        )
        table[byte] = magnitude if a & 0x80 else -magnitude
    return table


ULAW = _ulaw_table()
ALAW = _alaw_table()


def decode_ulaw(raw: bytes) -> np.ndarray:
    """int16 samples (8 kHz) from μ-law bytes."""
    return ULAW[np.frombuffer(raw, dtype=np.uint8)]


def decode_alaw(raw: bytes) -> np.ndarray:
    """int16 samples (8 kHz) from A-law bytes."""
    return ALAW[np.frombuffer(raw, dtype=np.uint8)]
