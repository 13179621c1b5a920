// The recorder page: wires the microphone, the realtime session and the upload to the DOM.
//
// Two modes, picked by the "Transcribe while recording" box:
//   live:   capture.js at 24 kHz → live.js's realtime session; partial text shows while you
//           speak, each utterance turns final when the server completes it; Stop commits the
//           rest, waits (bounded) for the outstanding utterances, then closes the socket.
//   record: capture.js at 16 kHz into the page; Stop hands the pieces to upload.js, which
//           posts them as a WAV file to /v1/audio/transcriptions.
// The audio math is pcm.js's and the transcript's bookkeeping transcript.js's (both pure).
// All state lives in one RecorderPage (made at the bottom) and, per recording, in the run
// it starts: nothing mutable at module level.

import { Capture } from "./capture.js";
import { UserError } from "./errors.js";
import { LiveSession } from "./live.js";
import { LIVE_RATE, SPEECH_BAND_HZ, level } from "./pcm.js";
import { KEY_STORAGE, LANGUAGE_STORAGE, Remembered, browserStorage } from "./storage.js";
import { Transcript } from "./transcript.js";
import { transcribeRecording } from "./upload.js";

const STATE_TEXT = Object.freeze({
  idle: "Ready",
  connecting: "Connecting…",
  live: "Live: transcribing while you speak",
  recording: "Recording: the transcript comes when you press Stop",
  finishing: "Finishing the transcript…",
  uploading: "Transcribing the recording…",
  closed: "Closed",
  done: "Done",
  error: "Error",
});

class RecorderPage {
  constructor(doc, remembered) {
    this.doc = doc;
    this.remembered = remembered;
    const byId = (id) => doc.getElementById(id);
    this.ui = {
      apiKey: byId("api-key"),
      language: byId("language"),
      liveToggle: byId("live-toggle"),
      start: byId("start"),
      stop: byId("stop"),
      elapsed: byId("elapsed"),
      level: byId("level"),
      state: byId("state"),
      error: byId("error"),
      final: byId("final"),
      partial: byId("partial"),
      copy: byId("copy"),
      copyStatus: byId("copy-status"),
    };
    this.transcript = new Transcript(); // the one shown; a new one per recording
    this.current = null; // the recording under way: {live, key, language, capture, session?, pieces?}
  }

  init() {
    const { ui } = this;
    const key = this.remembered.get(KEY_STORAGE);
    if (key) ui.apiKey.value = key;
    const language = this.remembered.get(LANGUAGE_STORAGE);
    if (language !== null && [...ui.language.options].some((o) => o.value === language)) {
      ui.language.value = language;
    }
    ui.apiKey.addEventListener("input", () =>
      this.remembered.set(KEY_STORAGE, ui.apiKey.value.trim()),
    );
    ui.language.addEventListener("change", () =>
      this.remembered.set(LANGUAGE_STORAGE, ui.language.value, { keepEmpty: true }),
    );
    ui.start.addEventListener("click", () => this.start());
    ui.stop.addEventListener("click", () => this.stop());
    ui.copy.addEventListener("click", () => this.copyTranscript());
    this.setBusy(false);
    this.setState("idle");
    this.doc.body.dataset.ready = "true";
  }

  // --- what the page shows -------------------------------------------------------------

  setState(name, detail = "") {
    this.ui.state.dataset.state = name;
    this.ui.state.textContent = STATE_TEXT[name] + (detail ? ` (${detail})` : "");
  }

  showError(message) {
    this.ui.error.textContent = message;
    this.ui.error.hidden = !message;
  }

  setBusy(busy) {
    const { ui } = this;
    ui.start.disabled = busy;
    ui.stop.disabled = !busy;
    ui.apiKey.disabled = busy;
    ui.language.disabled = busy;
    ui.liveToggle.disabled = busy;
  }

  render() {
    const { ui, transcript } = this;
    ui.final.replaceChildren();
    for (const text of transcript.finals()) {
      const span = this.doc.createElement("span");
      span.className = "item";
      span.textContent = text;
      ui.final.append(span, " ");
    }
    ui.final.dataset.items = String(transcript.finals().length);
    ui.partial.textContent = transcript.partialText();
  }

  showProgress(capture, piece) {
    const { ui } = this;
    const seconds = capture.seconds;
    ui.elapsed.dataset.seconds = seconds.toFixed(1);
    const whole = Math.floor(seconds);
    ui.elapsed.textContent = `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
    ui.level.value = Math.min(1, level(piece) * 4);
  }

  // --- a recording -----------------------------------------------------------------------

  async start() {
    const { ui } = this;
    this.showError("");
    ui.copyStatus.textContent = "";
    ui.elapsed.textContent = "0:00";
    ui.elapsed.dataset.seconds = "0";
    this.transcript = new Transcript();
    this.render();
    const run = {
      live: ui.liveToggle.checked,
      key: ui.apiKey.value.trim(),
      language: ui.language.value,
    };
    this.setBusy(true);
    this.current = run;
    try {
      if (run.live) {
        run.session = new LiveSession({
          key: run.key,
          language: run.language,
          transcript: this.transcript,
          base: this.doc.baseURI,
          onState: (name) => this.setState(name),
          onError: (message) => this.showError(message),
          onChange: () => this.render(),
          onClosed: () => this.abandon(run),
        });
        run.capture = new Capture(
          (piece) => {
            this.showProgress(run.capture, piece);
            run.session.sendAudio(piece); // queued until the socket is open
          },
          LIVE_RATE,
          SPEECH_BAND_HZ,
        );
        // Connect while the browser asks for the microphone; audio waits in the outbox.
        run.session.connect();
        await run.capture.start();
        ui.state.dataset.capture = run.capture.method || "";
      } else {
        run.pieces = [];
        run.capture = new Capture((piece) => {
          this.showProgress(run.capture, piece);
          run.pieces.push(piece);
        });
        await run.capture.start();
        if (this.current !== run) return; // Stop was pressed while the microphone opened
        ui.state.dataset.capture = run.capture.method || "";
        this.setState("recording");
      }
    } catch (err) {
      this.fail(run, err);
    }
  }

  async stop() {
    const run = this.current;
    if (!run) return;
    this.ui.stop.disabled = true;
    try {
      await run.capture.stop(); // hands over the last piece
      if (run.live) {
        await run.session.finish();
      } else {
        const seconds = run.capture.seconds;
        if (seconds < 0.1) throw new UserError("Nothing was recorded.");
        this.setState("uploading", `${seconds.toFixed(1)} s of audio`);
        const text = await transcribeRecording(run.pieces, {
          key: run.key,
          language: run.language,
          base: this.doc.baseURI,
        });
        this.transcript.addFinal(text);
        this.render();
        this.setState("done");
      }
    } catch (err) {
      this.fail(run, err);
      return;
    }
    this.settle(run);
  }

  // The session ended by itself (an error closed the socket): release the microphone.
  abandon(run) {
    if (run.capture) run.capture.stop();
    this.settle(run);
  }

  // The recording is over: Start works again.
  settle(run) {
    if (this.current === run) this.current = null;
    this.ui.level.value = 0;
    this.setBusy(false);
  }

  fail(run, err) {
    if (!(err instanceof UserError)) console.error(err);
    this.showError(err && err.message ? err.message : String(err));
    this.setState("error");
    if (run.session) run.session.close();
    this.abandon(run);
  }

  // --- copy ------------------------------------------------------------------------------

  async copyTranscript() {
    const { ui } = this;
    const text = this.transcript.finalText();
    if (!text) {
      ui.copyStatus.textContent = "Nothing to copy yet.";
      return;
    }
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ui.copyStatus.textContent = "Copied.";
        return;
      }
    } catch {
      // the clipboard API refused (permissions): try the old way
    }
    const area = this.doc.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    this.doc.body.append(area);
    area.select();
    let copied = false;
    try {
      copied = this.doc.execCommand("copy");
    } catch {
      copied = false;
    }
    area.remove();
    if (copied) {
      ui.copyStatus.textContent = "Copied.";
    } else {
      // Leave the text selected so the user can copy it by hand.
      const range = this.doc.createRange();
      range.selectNodeContents(ui.final);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      ui.copyStatus.textContent = "Select all is done: press Ctrl+C (or ⌘C) to copy.";
    }
  }
}

new RecorderPage(document, new Remembered(browserStorage())).init();
