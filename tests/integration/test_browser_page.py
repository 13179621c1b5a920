"""The recorder page (``GET /``) in real headless Chromium, against a real router and workers.

Chromium's fake microphone plays espeak-ng speech (the ``speech`` fixture's scored
sentences, once, from the moment the page opens the microphone); the page streams
it to ``/v1/realtime`` or uploads it, and we read the transcript back from the DOM.
Debian's ``chromium`` is driven by the ``playwright`` package; nothing is downloaded
(``tests/support/browser.py``).
"""

from __future__ import annotations

import itertools
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import Clip
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.procs import ServerProcess, router, workers
from tests.support.speech import SCORED, SENTENCES, normalize, word_error_rate

pytestmark = pytest.mark.slow

API_KEY = "browser-test-key"
# A fake microphone that needs no permission prompt; the file it plays is added per page.
RECORDER_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
# What the fake microphone says, in order: the sentences tiny.en reads back well from the
# files themselves (it hears espeak's "brown fox" as "round fox" even there).
SPOKEN = [SENTENCES[name] for name in SCORED]


@dataclass(frozen=True)
class Routers:
    open: ServerProcess  # --no-auth
    keyed: ServerProcess  # ASRPOOL_API_KEYS=API_KEY


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routers]:
    """Two real workers behind two routers: one open, one that wants ``API_KEY``."""
    tmp = tmp_path_factory.mktemp("browser-pool")
    with workers(tmp, 2) as procs:
        backends = [p.url for p in procs]
        with (
            router(tmp, backends) as open_router,
            router(tmp, backends, api_keys=(API_KEY,)) as keyed_router,
        ):
            yield Routers(open_router, keyed_router)


@pytest.fixture(scope="module")
def microphone_wav(speech: dict[str, Clip], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SPOKEN as Chrome's fake capture device reads best: 48 kHz stereo PCM16.

    Each clip has ~0.5 s of silence either side, so the server's VAD (500 ms) cuts
    between sentences and a recording stopped there ends in a pause."""
    path = tmp_path_factory.mktemp("microphone") / "speech-48k.wav"
    clips = [str(speech[name].path) for name in SCORED]
    subprocess.run(["sox", *clips, "-r", "48000", "-c", "2", "-b", "16", str(path)], check=True)
    return path


def clip_seconds(clip: Clip) -> float:
    with wave.open(str(clip.path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@dataclass
class RecorderPage:
    """The page in a fresh browser profile, with what the browser logged (for failures)."""

    context: BrowserContext
    page: Page
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page fetched
    responses: dict[str, tuple[int, str]] = field(default_factory=dict)  # URL → status, type

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def state(self) -> str:
        return str(self.page.get_attribute("#state", "data-state"))

    def wait(self, script: str, timeout_s: float, what: str) -> None:
        """Wait until ``script`` (a JS expression) is true, or fail saying what we saw."""
        try:
            self.page.wait_for_function(f"() => {script}", timeout=timeout_s * 1000)
        except PlaywrightTimeout as exc:
            raise AssertionError(f"no {what} after {timeout_s}s; {self.describe()}") from exc

    def wait_state(self, *states: str, timeout_s: float) -> str:
        wanted = ", ".join(f"'{s}'" for s in states)
        self.wait(
            f"[{wanted}].includes(document.querySelector('#state').dataset.state)",
            timeout_s,
            f"state in ({wanted})",
        )
        return self.state()

    def describe(self) -> str:
        return (
            f"state={self.state()!r} ({self.text('#state')!r}), error={self.text('#error')!r}, "
            f"final={self.text('#final')!r}, partial={self.text('#partial')!r}, "
            f"console={self.console[-20:]!r}"
        )


class OpenPage(Protocol):
    def __call__(self, url: str, init_script: str | None = None) -> RecorderPage: ...


@pytest.fixture
def open_page(driver: Playwright, microphone_wav: Path, tmp_path: Path) -> Iterator[OpenPage]:
    """``open_page(url, init_script)`` → a RecorderPage in its own Chromium (fresh profile
    in tmp_path); ``init_script`` runs before the page's own scripts."""
    opened: list[BrowserContext] = []

    def open_(url: str, init_script: str | None = None) -> RecorderPage:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path / f"profile-{len(opened)}"),
            executable_path=chromium_path(),
            headless=True,
            # %noloop: the file plays once, so the transcript can only hold its sentences
            # in order, however long a slow machine takes.
            args=[*RECORDER_ARGS, f"--use-file-for-fake-audio-capture={microphone_wav}%noloop"],
            permissions=["microphone", "clipboard-read", "clipboard-write"],
            viewport={"width": 900, "height": 760},
        )
        opened.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        recorder = RecorderPage(context, page)
        page.on("console", lambda msg: recorder.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: recorder.console.append(f"pageerror: {err}"))
        page.on("request", lambda request: recorder.requests.append(request.url))
        page.on(
            "response",
            lambda r: recorder.responses.update(
                {r.url: (r.status, r.headers.get("content-type", ""))}
            ),
        )
        if init_script:
            page.add_init_script(init_script)
        page.goto(url, timeout=15_000)
        recorder.wait("document.body.dataset.ready === 'true'", 10, "page script")
        return recorder

    yield open_
    for context in opened:
        context.close()


def prefix_wer(hypothesis: str) -> float:
    """WER against the spoken text's best-matching prefix: the test stops mid-speech, so
    the transcript should be what was said up to about there, in order."""
    ref = normalize(" ".join(SPOKEN)).split()
    n = len(normalize(hypothesis).split())
    lengths = range(max(1, n - 8), min(len(ref), n + 8) + 1)
    return min(word_error_rate(" ".join(ref[:k]), hypothesis) for k in lengths)


def test_the_page_loads_its_modules_with_no_console_errors(
    routers: Routers, open_page: OpenPage
) -> None:
    """The page is ES modules the router serves as JavaScript: each loads, nothing logs."""
    rec = open_page(routers.open.url)
    static = f"{routers.open.url}/static/"
    modules = {
        url.removeprefix(static): answer
        for url, answer in rec.responses.items()
        if url.startswith(static) and url.endswith(".js")
    }
    # The page module and what it imports, all before the page said it was ready.
    assert {"recorder.js", "capture.js", "live.js", "upload.js", "pcm.js"} <= modules.keys()
    for name, (status, content_type) in modules.items():
        assert status == 200 and content_type.startswith("text/javascript"), (name, content_type)
    assert rec.state() == "idle" and rec.page.is_enabled("#start"), rec.describe()
    # Errors, warnings, uncaught exceptions (Chromium's own verbose hints are not ours).
    problems = [c for c in rec.console if c.startswith(("error:", "warning:", "pageerror:"))]
    assert problems == [], rec.console


def test_live_mode_shows_partials_then_final_text_and_closes_cleanly(
    routers: Routers, open_page: OpenPage, tmp_path: Path
) -> None:
    rec = open_page(routers.keyed.url)
    rec.page.fill("#api-key", API_KEY)  # sent as the openai-insecure-api-key subprotocol
    assert rec.page.is_checked("#live-toggle")
    rec.page.click("#start")
    rec.wait_state("live", timeout_s=15)
    rec.wait("document.querySelector('#partial').textContent.trim().length > 0", 20, "partial")
    # Two utterances final: the server cut at the pause between the first two sentences.
    rec.wait("Number(document.querySelector('#final').dataset.items) >= 2", 30, "two finals")
    rec.page.click("#stop")
    assert rec.wait_state("closed", "error", timeout_s=40) == "closed", rec.describe()
    assert rec.text("#error") == "", rec.describe()

    final = rec.text("#final")
    words = normalize(final)
    # The first two sentences in order, then whatever was said until Stop (committed then).
    for key in ("meeting", "friday", "library", "last week"):
        assert key in words, rec.describe()
    assert words.index("meeting") < words.index("library"), final
    assert prefix_wer(final) < 0.35, rec.describe()
    assert rec.text("#partial") == ""  # nothing left pending after Stop
    assert rec.page.get_attribute("#state", "data-capture") == "AudioWorklet"

    rec.page.click("#copy")
    rec.wait("document.querySelector('#copy-status').textContent === 'Copied.'", 5, "copy")
    assert rec.page.evaluate("navigator.clipboard.readText()") == final

    # Page, scripts and styles all came from the router: no CDN, nothing outside.
    assert rec.requests and all(u.startswith(routers.keyed.url + "/") for u in rec.requests)

    shot = tmp_path / "recorder.png"
    rec.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_record_then_transcribe_uploads_a_wav_on_stop_even_without_audio_worklet(
    routers: Routers, open_page: OpenPage, speech: dict[str, Clip]
) -> None:
    # Without AudioWorklet (older browsers) the page captures with a ScriptProcessor.
    rec = open_page(routers.open.url, "delete window.AudioWorkletNode;")
    rec.page.uncheck("#live-toggle")
    rec.page.click("#start")
    rec.wait_state("recording", timeout_s=15)
    assert rec.page.get_attribute("#state", "data-capture") == "ScriptProcessor"
    assert rec.text("#final") == "" and rec.text("#partial") == ""  # nothing until Stop
    # Stop in the pause after the second sentence (~1 s of silence between clips), counted
    # in seconds of audio the page captured, not wall time: no word is cut at the end.
    pause = sum(clip_seconds(speech[name]) for name in SCORED[:2]) - 0.2
    rec.wait(f"Number(document.querySelector('#elapsed').dataset.seconds) >= {pause}", 25, "audio")
    rec.page.click("#stop")
    assert rec.wait_state("done", "error", timeout_s=40) == "done", rec.describe()

    final = rec.text("#final")
    assert word_error_rate(" ".join(SPOKEN[:2]), final) < 0.35, rec.describe()
    assert "library" in normalize(final), rec.describe()
    assert rec.page.is_enabled("#start") and not rec.page.is_enabled("#stop")


def test_wrong_api_key_shows_the_servers_message_in_both_modes(
    routers: Routers, open_page: OpenPage
) -> None:
    rec = open_page(routers.keyed.url)
    rec.page.fill("#api-key", "not-the-key")
    rec.page.click("#start")
    assert rec.wait_state("error", "live", timeout_s=15) == "error", rec.describe()
    # The realtime endpoint's own words (error event), not a generic socket failure.
    rec.wait("document.querySelector('#error').textContent.includes('wrong API key')", 5, "msg")
    assert "Missing or wrong API key" in rec.text("#error")
    assert rec.page.is_visible("#error")
    # The session is over: the microphone is released and Start works again.
    rec.wait("!document.querySelector('#start').disabled", 5, "Start enabled")

    # The upload says the same, from the router's OpenAI-shaped 401.
    rec.page.uncheck("#live-toggle")
    rec.page.click("#start")
    rec.wait_state("recording", timeout_s=15)
    assert rec.text("#error") == ""  # a new attempt clears the old error
    rec.wait("Number(document.querySelector('#elapsed').dataset.seconds) >= 0.5", 10, "audio")
    rec.page.click("#stop")
    assert rec.wait_state("done", "error", timeout_s=20) == "error", rec.describe()
    assert "Missing or wrong API key" in rec.text("#error")

    # The key was remembered for the next visit.
    rec.page.reload()
    rec.wait("document.body.dataset.ready === 'true'", 10, "page script")
    assert rec.page.input_value("#api-key") == "not-the-key"


def test_stop_while_the_microphone_starts_ends_cleanly(
    routers: Routers, open_page: OpenPage
) -> None:
    """Stop (pressed, or a refused key closing the session: CI saw that race under load)
    comes while the capture's worklet still loads: the page stops cleanly, no fallback to a
    ScriptProcessor on the closed audio context, no error."""
    rec = open_page(routers.open.url)
    # The worklet's module loads 1.5 s late, and says when it is over.
    rec.page.evaluate(
        """() => {
          const load = AudioWorklet.prototype.addModule;
          AudioWorklet.prototype.addModule = function (...args) {
            window.workletLoading = true;
            const late = new Promise((ok) => setTimeout(ok, 1500));
            const loaded = late.then(() => load.apply(this, args));
            loaded.finally(() => setTimeout(() => { window.workletSettled = true; }, 300));
            return loaded;
          };
        }"""
    )
    rec.page.click("#start")
    rec.wait("window.workletLoading === true", 15, "the worklet loading")
    rec.page.click("#stop")
    rec.wait("window.workletSettled === true", 10, "the late worklet load over")
    rec.wait("!document.querySelector('#start').disabled", 10, "Start enabled")
    assert rec.state() != "error", rec.describe()
    assert rec.text("#error") == "", rec.describe()
    assert not [line for line in rec.console if "TypeError" in line], rec.console


def test_page_audio_helpers_resample_encode_and_track_items(
    routers: Routers, open_page: OpenPage, tmp_path: Path
) -> None:
    """pcm.js and transcript.js, the page's pure parts, run in the browser itself."""
    rec = open_page(routers.open.url)
    result = rec.page.evaluate(
        """async () => {
          const pcm = await import('./static/pcm.js');
          const {Transcript} = await import('./static/transcript.js');
          const tone = (hz, rate, seconds) => Float32Array.from(
            {length: rate * seconds}, (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / rate));
          const resample = (input, rate, sizes) => {
            const r = new pcm.Resampler(rate, 16000);
            const parts = [];
            for (let i = 0, k = 0; i < input.length; k++) {
              const n = sizes[k % sizes.length];
              parts.push(r.push(input.subarray(i, i + n)));
              i += n;
            }
            parts.push(r.flush());
            const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
            let o = 0;
            for (const p of parts) { out.set(p, o); o += p.length; }
            return Array.from(out);
          };
          // The live stream: 24 kHz, but only the band the server's 16 kHz keeps.
          const live = (hz) => Array.from(
            new pcm.Resampler(48000, pcm.LIVE_RATE, 8, pcm.SPEECH_BAND_HZ)
              .push(tone(hz, 48000, 1)));
          const pieces = new pcm.PieceBuffer();
          const cut = pieces.push(new Int16Array(3500)).map((p) => p.length);
          const t = new Transcript();
          const ev = (type, item, extra) => t.apply({type, item_id: item, ...extra});
          const d = 'conversation.item.input_audio_transcription.delta';
          const c = 'conversation.item.input_audio_transcription.completed';
          ev('input_audio_buffer.speech_started', 'a');
          ev(d, 'a', {delta: 'Hel', partial_transcript: 'Hel'});
          ev(d, 'a', {delta: '', partial_transcript: 'Hello wor'});
          const partialBefore = t.partialText();
          ev('input_audio_buffer.speech_started', 'b');
          ev(d, 'b', {delta: 'Sec', partial_transcript: 'Sec'});
          ev(c, 'a', {transcript: 'Hello world.'});
          ev(d, 'a', {delta: 'late', partial_transcript: 'late'});
          return {
            tone1k: resample(tone(1000, 48000, 1), 48000, [128, 1000, 4096, 7]),
            tone12k: resample(tone(12000, 48000, 1), 48000, [1024]),
            tone1k24: resample(tone(1000, 24000, 1), 24000, [333]),
            live1k: live(1000),
            live10k: live(10000),
            pcm16: Array.from(pcm.floatToPcm16([1, -1, 0, 2, -2, 0.5])),
            b64: pcm.base64Pcm16(Int16Array.from([1, -2])),
            wav: Array.from(new Uint8Array(pcm.wavFile([Int16Array.from([1, 2, 3]),
                                                       Int16Array.from([-4])]))),
            pieces: [...cut, pieces.flush().length],
            partialBefore,
            finalAfter: t.finalText(),
            partialAfter: t.partialText(),
            pending: t.pending(),
          };
        }"""
    )
    for name, rate in (("tone1k", 48000), ("tone1k24", 24000)):
        out = result[name]
        assert abs(len(out) - 16000) <= 1, (name, len(out))
        middle = out[1000:15000]  # away from the edges, where the kernel runs out of input
        assert 0.49 < max(middle) < 0.51 and -0.51 < min(middle) < -0.49, name
        crossings = sum(1 for a, b in itertools.pairwise(middle) if a < 0 <= b)
        assert abs(crossings - 875) <= 2, (name, rate, crossings)  # 1 kHz over 0.875 s
    # Above 8 kHz cannot be represented at 16 kHz: filtered out, not folded back as 4 kHz.
    assert max(abs(x) for x in result["tone12k"][1000:15000]) < 0.005
    # The live stream is 24 kHz yet carries nothing the server's 16 kHz would fold back.
    assert abs(len(result["live1k"]) - 24000) <= 30
    assert 0.49 < max(result["live1k"][2000:20000]) < 0.51
    assert max(abs(x) for x in result["live10k"][2000:20000]) < 0.005

    assert result["pcm16"] == [32767, -32768, 0, 32767, -32768, 16384]
    assert result["b64"] == "AQD+/w=="  # little-endian: 01 00, fe ff
    wav_path = tmp_path / "page.wav"
    wav_path.write_bytes(bytes(result["wav"]))
    with wave.open(str(wav_path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(10) == b"\x01\x00\x02\x00\x03\x00\xfc\xff"
    assert result["pieces"] == [1600, 1600, 300]

    assert result["partialBefore"] == "Hello wor"  # partial_transcript replaces, not appends
    assert result["finalAfter"] == "Hello world."
    assert result["partialAfter"] == "Sec"  # a late partial never overwrites a final item
    assert result["pending"] == 1
