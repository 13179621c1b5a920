"""The router decodes each upload once and sends pods 16 kHz mono WAV (``--decode-uploads``).

Against the fault double, which records the file part each transcription brought: a
44.1 kHz stereo WAV and a FLAC reach the pod as 16 kHz mono 16-bit WAV holding exactly the
upload's audio; an undecodable file is refused with 400 before any pod sees it; with
``--decode-uploads off`` the pod gets the bytes as uploaded. Then a real worker reads the
sentence from a FLAC decoded by the router.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.fault_backend import fault_backend, hits, set_fault
from tests.support.procs import router, worker
from tests.support.router_checks import transcribe
from tests.support.speech import word_error_rate

pytestmark = pytest.mark.slow


def converted(source: Path, target: Path, *sox_args: str) -> Path:
    subprocess.run(["sox", str(source), *sox_args, str(target)], check=True)
    return target


def seconds_of(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True)
    return float(out.stdout)


def wav_format(head: bytes) -> tuple[int, int, int]:
    """(rate, channels, bits) from a canonical WAV header (what wave.open writes)."""
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE", head[:12]
    channels, rate = struct.unpack("<HI", head[22:28])
    (bits,) = struct.unpack("<H", head[34:36])
    return rate, channels, bits


def test_pods_get_each_upload_as_16khz_mono_wav_of_the_same_length(tmp_path, speech):
    source = speech["meeting"].path
    uploads = [
        converted(source, tmp_path / "stereo.wav", "-r", "44100", "-c", "2"),
        converted(source, tmp_path / "meeting.flac", "-r", "22050"),
    ]
    with fault_backend(tmp_path) as pod, router(tmp_path, [pod.url]) as r:
        for upload in uploads:
            answer = transcribe(r.url, upload)
            assert answer.status_code == 200, answer.text
            got = hits(pod.url)["last_file"]
            assert got["filename"] == upload.stem + ".wav"
            assert wav_format(bytes.fromhex(got["head"])) == (16_000, 1, 16)
            sent_s = (got["size"] - 44) / (2 * 16_000)
            assert sent_s == pytest.approx(seconds_of(upload), abs=0.02), upload.name
            assert got["size"] < upload.stat().st_size or upload.suffix == ".flac"


def test_an_undecodable_upload_is_refused_before_any_pod_sees_it(tmp_path):
    with fault_backend(tmp_path) as pod, router(tmp_path, [pod.url]) as r:
        set_fault(pod.url, reset_hits=True)
        answer = httpx.post(
            f"{r.url}/v1/audio/transcriptions",
            files={"file": ("talk.mp3", b"ID3 this is not an mp3 at all " * 40)},
            timeout=30,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_audio"
        assert answer.json()["error"]["param"] == "file"
        assert hits(pod.url)["total"] == 0


def test_with_decoding_off_pods_get_the_upload_as_sent(tmp_path, speech):
    upload = converted(speech["office"].path, tmp_path / "office.flac")
    with (
        fault_backend(tmp_path) as pod,
        router(tmp_path, [pod.url], "--decode-uploads", "off") as r,
    ):
        assert transcribe(r.url, upload).status_code == 200
        got = hits(pod.url)["last_file"]
        assert got["filename"] == "office.flac"
        assert got["size"] == upload.stat().st_size
        assert bytes.fromhex(got["head"]) == upload.read_bytes()[:64]


def test_a_real_worker_reads_the_wav_the_router_decoded(tmp_path, speech):
    upload = converted(speech["library"].path, tmp_path / "library.flac", "-r", "48000")
    with worker(tmp_path) as pod, router(tmp_path, [pod.url]) as r:
        answer = transcribe(r.url, upload)
        assert answer.status_code == 200, answer.text
        assert word_error_rate(speech["library"].text, answer.json()["text"]) < 0.2
