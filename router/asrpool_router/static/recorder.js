// The recorder page: microphone → PCM16 → the router, and the transcript back.
//
// Two modes, picked by the "Transcribe while recording" box:
//   live:   a realtime session (/v1/realtime?intent=transcription) in OpenAI's GA shape
//           (session.update / session.updated, 24 kHz PCM16); 100 ms pieces go out as
//           they are recorded, partial text shows while you speak, each utterance turns
//           final when the server completes it. Stop commits the rest, waits (bounded) for
//           the outstanding utterances, then closes the socket.
//   record: audio is kept in the page (16 kHz); Stop wraps it as a WAV file and posts it to
//           /v1/audio/transcriptions, the way users worked before the realtime endpoint.
// The audio math lives in pcm.js and the transcript's bookkeeping in transcript.js (both
// pure); this file holds the shells: capture, socket, upload, and the DOM.

import {
  LIVE_RATE,
  PIECE_MS,
  PieceBuffer,
  Resampler,
  SPEECH_BAND_HZ,
  TARGET_RATE,
  base64Pcm16,
  floatToPcm16,
  level,
  wavFile,
} from "./pcm.js";
import { Transcript } from "./transcript.js";

const KEY_STORAGE = "asrpool.apiKey";
const LANGUAGE_STORAGE = "asrpool.language";
const KEY_SUBPROTOCOL = "openai-insecure-api-key.";
// After Stop, how long to wait for utterances the server is still transcribing.
const FINISH_TIMEOUT_MS = 30000;
const SILENCE_MS = 500; // a pause this long ends an utterance (server VAD)
// The raw signal: the browser's call processing (noise suppression, echo cancellation,
// gain control) is tuned for people listening, and its artefacts cost Whisper words.
// Measured with Chrome's fake microphone on synthetic speech: with it on, the captured
// audio was 0.8 dB SNR against the file (gain pumping, clipped peaks); off, 33 dB.
const MICROPHONE = {
  channelCount: 1,
  echoCancellation: false,
  noiseSuppression: false,
  autoGainControl: false,
};

const STATE_TEXT = {
  idle: "Ready",
  connecting: "Connecting…",
  live: "Live: transcribing while you speak",
  recording: "Recording: the transcript comes when you press Stop",
  finishing: "Finishing the transcript…",
  uploading: "Transcribing the recording…",
  closed: "Closed",
  done: "Done",
  error: "Error",
};

const ui = {
  apiKey: document.getElementById("api-key"),
  language: document.getElementById("language"),
  liveToggle: document.getElementById("live-toggle"),
  start: document.getElementById("start"),
  stop: document.getElementById("stop"),
  elapsed: document.getElementById("elapsed"),
  level: document.getElementById("level"),
  state: document.getElementById("state"),
  error: document.getElementById("error"),
  final: document.getElementById("final"),
  partial: document.getElementById("partial"),
  copy: document.getElementById("copy"),
  copyStatus: document.getElementById("copy-status"),
};

// An error whose message is written for the user.
class UserError extends Error {}

function setState(name, detail = "") {
  ui.state.dataset.state = name;
  ui.state.textContent = STATE_TEXT[name] + (detail ? ` (${detail})` : "");
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function setBusy(busy) {
  ui.start.disabled = busy;
  ui.stop.disabled = !busy;
  ui.apiKey.disabled = busy;
  ui.language.disabled = busy;
  ui.liveToggle.disabled = busy;
}

// --- microphone -------------------------------------------------------------------------

// Microphone → mono floats (AudioWorklet, else ScriptProcessor) → PCM16 pieces of 100 ms at
// `rate` (band-limited to `bandHz`), each handed to onPiece in order.
class Capture {
  constructor(onPiece, rate = TARGET_RATE, bandHz = Infinity) {
    this.onPiece = onPiece;
    this.rate = rate;
    this.bandHz = bandHz;
    this.samples = 0; // samples at `rate` produced so far
    this.stopped = false;
  }

  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new UserError(
        "This browser gives pages the microphone only over https:// (or on localhost). " +
          "Open the page through HTTPS or via http://localhost.",
      );
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: MICROPHONE });
    } catch (err) {
      throw new UserError(microphoneMessage(err));
    }
    if (this.stopped) return this._release(); // Stop came while the browser asked
    const Context = window.AudioContext || window.webkitAudioContext;
    // The device's own rate; pcm.js resamples (browsers differ in whether a microphone may
    // feed a context running at another rate).
    this.context = new Context();
    this.resampler = new Resampler(this.context.sampleRate, this.rate, 8, this.bandHz);
    this.pieces = new PieceBuffer((this.rate * PIECE_MS) / 1000);
    this.source = this.context.createMediaStreamSource(this.stream);
    // Nodes only run when they lead to the destination; a muted gain keeps them silent.
    this.sink = this.context.createGain();
    this.sink.gain.value = 0;
    this.sink.connect(this.context.destination);
    this.node = await this._workletNode();
    // Stop may come while the worklet loads (a refused key ends the session at once): the
    // context is closed then, and its failed addModule is no reason to try ScriptProcessor.
    if (this.stopped) return this._release();
    if (this.node) {
      this.method = "AudioWorklet";
      this.node.port.onmessage = (event) => this._take(event.data);
    } else {
      this.method = "ScriptProcessor";
      this.node = this.context.createScriptProcessor(4096, 1, 1);
      this.node.onaudioprocess = (event) =>
        this._take(new Float32Array(event.inputBuffer.getChannelData(0)));
    }
    if (this.stopped) return this._release();
    this.source.connect(this.node);
    this.node.connect(this.sink);
    await this.context.resume();
  }

  async _workletNode() {
    if (!this.context.audioWorklet || typeof AudioWorkletNode !== "function") return null;
    try {
      await this.context.audioWorklet.addModule(new URL("capture-worklet.js", import.meta.url));
      return new AudioWorkletNode(this.context, "asrpool-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
      });
    } catch (err) {
      if (!this.stopped) console.warn("AudioWorklet unavailable, using ScriptProcessor:", err);
      return null;
    }
  }

  _take(floats) {
    if (this.stopped) return; // late blocks after Stop: the tail was already handed over
    this._emit(floatToPcm16(this.resampler.push(floats)));
  }

  _emit(pcm) {
    this.samples += pcm.length;
    for (const piece of this.pieces.push(pcm)) this.onPiece(piece);
  }

  // Stop the microphone and hand over what is left (the last piece may be shorter).
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    await this._release();
    if (this.resampler) {
      this._emit(floatToPcm16(this.resampler.flush()));
      const rest = this.pieces.flush();
      if (rest) this.onPiece(rest);
    }
  }

  // Give the microphone and the audio context back (safe to call more than once).
  async _release() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    if (this.source) this.source.disconnect();
    if (this.node) this.node.disconnect();
    const context = this.context;
    this.context = null;
    if (context) await context.close().catch(() => {});
  }
}

function microphoneMessage(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Microphone access was refused. Allow the microphone for this page in the " +
        "browser's site settings, then press Start again."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in, then press Start again.";
    case "NotReadableError":
      return "The microphone could not be opened; another program may be using it.";
    default:
      return `The microphone could not be opened: ${err && err.message ? err.message : err}`;
  }
}

// --- live mode: realtime session ----------------------------------------------------------

class LiveSession {
  constructor({ key, language, transcript, onChange }) {
    this.key = key;
    this.language = language;
    this.transcript = transcript;
    this.onChange = onChange; // the transcript changed
    this.outbox = []; // messages written before the socket opened
    this.updatesSent = 0;
    this.updatesAnswered = 0;
    this.stopping = false;
    this.closedByUs = false;
    this.opened = false;
    this.failed = false; // an error ended the session
    this.lastError = "";
    this.waiter = null; // re-checks the finish condition on every event
  }

  connect() {
    const url = new URL("v1/realtime?intent=transcription", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol,
    // and the server answers with "realtime" (it never echoes the key).
    const protocols = ["realtime"];
    if (this.key) protocols.push(KEY_SUBPROTOCOL + this.key);
    try {
      this.ws = new WebSocket(url, protocols);
    } catch (err) {
      throw new UserError(
        err && err.name === "SyntaxError" && this.key
          ? "The API key has characters a browser cannot send (spaces or punctuation); check it."
          : `Could not open ${url}: ${err && err.message ? err.message : err}`,
      );
    }
    this.url = url;
    setState("connecting");
    this.ws.onopen = () => this._onOpen();
    this.ws.onmessage = (event) => this._onMessage(event.data);
    this.ws.onclose = (event) => this._onClose(event);
  }

  _sessionUpdate() {
    this.updatesSent += 1;
    return {
      type: "session.update",
      session: {
        type: "transcription",
        audio: {
          input: {
            format: { type: "audio/pcm", rate: LIVE_RATE },
            transcription: { language: this.language || null },
            turn_detection: { type: "server_vad", silence_duration_ms: SILENCE_MS },
          },
        },
      },
    };
  }

  _onOpen() {
    this.opened = true;
    this.ws.send(JSON.stringify(this._sessionUpdate()));
    for (const message of this.outbox) this.ws.send(message);
    this.outbox = [];
  }

  _send(event) {
    const message = JSON.stringify(event);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(message);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.outbox.push(message);
  }

  sendAudio(piece) {
    this._send({ type: "input_audio_buffer.append", audio: base64Pcm16(piece) });
  }

  _onMessage(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return; // not ours to show
    }
    switch (event.type) {
      case "session.created":
        if (!this.stopping) setState("live");
        break;
      case "session.updated":
        this.updatesAnswered += 1;
        break;
      case "error":
        this._onServerError(event.error || {});
        break;
      case "conversation.item.input_audio_transcription.failed": {
        const err = event.error || {};
        showError(`Part of the transcript was lost: ${err.message || err.code || "failed"}`);
        break;
      }
      default:
        break;
    }
    if (this.transcript.apply(event)) this.onChange();
    if (this.waiter) this.waiter();
  }

  _onServerError(err) {
    // Committing when the server already closed the last utterance is not a problem.
    if (this.stopping && err.code === "input_audio_buffer_commit_empty") return;
    this.lastError = err.message || err.code || "The server reported an error.";
    showError(this.lastError);
    if (err.code === "unauthorized" || err.code === "unsupported_intent") {
      this.failed = true; // the server closes the socket next
      setState("error");
    }
  }

  _onClose(event) {
    if (this.waiter) this.waiter();
    if (this.closedByUs) return;
    this.failed = true;
    if (!this.lastError) {
      const reason = event.reason ? `: ${event.reason}` : "";
      showError(
        this.opened
          ? `The server closed the connection (code ${event.code}${reason}).`
          : `Could not connect to ${this.url} (code ${event.code}${reason}).`,
      );
    }
    setState("error");
    if (this.onClosed) this.onClosed();
  }

  // Stop was pressed and the microphone has handed over its last piece: commit the rest,
  // wait until every utterance is final (at most FINISH_TIMEOUT_MS), then close.
  async finish() {
    this.stopping = true;
    if (this.failed) return;
    setState("finishing");
    this._send({ type: "input_audio_buffer.commit" });
    // The server answers events in order, so once this update is answered the commit was
    // handled and every utterance it produced is known to the transcript.
    this._send(this._sessionUpdate());
    const settled = () =>
      this.failed ||
      this.ws.readyState === WebSocket.CLOSED ||
      (this.updatesAnswered >= this.updatesSent && this.transcript.pending() === 0);
    const done = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), FINISH_TIMEOUT_MS);
      this.waiter = () => {
        if (settled()) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      this.waiter();
    });
    this.waiter = null;
    if (this.failed) return;
    if (!done) {
      const missing = this.transcript.pending();
      showError(
        `Stopped waiting after ${FINISH_TIMEOUT_MS / 1000} s: ${missing} part(s) of the ` +
          "transcript did not arrive. The text above is what the server finished.",
      );
    }
    this.close();
    setState("closed");
  }

  close() {
    this.closedByUs = true;
    if (!this.ws) return;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(1000, "done");
    }
  }
}

// --- record mode: upload when stopped -----------------------------------------------------

async function transcribeRecording(pieces, key, language) {
  const form = new FormData();
  form.append("file", new Blob([wavFile(pieces)], { type: "audio/wav" }), "recording.wav");
  form.append("model", "whisper-1");
  form.append("response_format", "json");
  if (language) form.append("language", language);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  let response;
  try {
    response = await fetch(new URL("v1/audio/transcriptions", document.baseURI), {
      method: "POST",
      body: form,
      headers,
    });
  } catch (err) {
    throw new UserError(`Could not reach the server: ${err && err.message ? err.message : err}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the status line
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message;
    throw new UserError(message || `The server answered ${response.status} ${response.statusText}.`);
  }
  if (!body || typeof body.text !== "string") {
    throw new UserError("The server's answer had no text.");
  }
  return body.text;
}

// --- the page ----------------------------------------------------------------------------

let transcript = new Transcript();
let current = null; // {capture, session?, pieces?} while recording

function render() {
  ui.final.replaceChildren();
  for (const text of transcript.finals()) {
    const span = document.createElement("span");
    span.className = "item";
    span.textContent = text;
    ui.final.append(span, " ");
  }
  ui.final.dataset.items = String(transcript.finals().length);
  ui.partial.textContent = transcript.partialText();
}

function showProgress(capture, piece) {
  const seconds = capture.samples / capture.rate;
  ui.elapsed.dataset.seconds = seconds.toFixed(1);
  const whole = Math.floor(seconds);
  ui.elapsed.textContent = `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
  ui.level.value = Math.min(1, level(piece) * 4);
}

async function start() {
  showError("");
  ui.copyStatus.textContent = "";
  ui.elapsed.textContent = "0:00";
  ui.elapsed.dataset.seconds = "0";
  transcript = new Transcript();
  render();
  const key = ui.apiKey.value.trim();
  const language = ui.language.value;
  const live = ui.liveToggle.checked;
  setBusy(true);
  const run = { live };
  current = run;
  try {
    if (live) {
      run.session = new LiveSession({ key, language, transcript, onChange: render });
      run.session.onClosed = () => abandon(run);
      run.capture = new Capture(
        (piece) => {
          showProgress(run.capture, piece);
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
        showProgress(run.capture, piece);
        run.pieces.push(piece);
      });
      await run.capture.start();
      if (current !== run) return; // Stop was pressed while the microphone opened
      ui.state.dataset.capture = run.capture.method || "";
      setState("recording");
    }
  } catch (err) {
    fail(run, err);
  }
}

async function stop() {
  const run = current;
  if (!run) return;
  ui.stop.disabled = true;
  try {
    await run.capture.stop(); // hands over the last piece
    if (run.live) {
      await run.session.finish();
    } else {
      const seconds = run.capture.samples / run.capture.rate;
      if (seconds < 0.1) throw new UserError("Nothing was recorded.");
      setState("uploading", `${seconds.toFixed(1)} s of audio`);
      const text = await transcribeRecording(run.pieces, ui.apiKey.value.trim(), ui.language.value);
      transcript.addFinal(text);
      render();
      setState("done");
    }
  } catch (err) {
    fail(run, err);
    return;
  }
  if (current === run) current = null;
  ui.level.value = 0;
  setBusy(false);
}

// The session ended by itself (an error closed the socket): release the microphone.
function abandon(run) {
  if (run.capture) run.capture.stop();
  if (current === run) current = null;
  ui.level.value = 0;
  setBusy(false);
}

function fail(run, err) {
  if (!(err instanceof UserError)) console.error(err);
  showError(err && err.message ? err.message : String(err));
  setState("error");
  if (run.session) run.session.close();
  abandon(run);
}

async function copyTranscript() {
  const text = transcript.finalText();
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
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  if (copied) {
    ui.copyStatus.textContent = "Copied.";
  } else {
    // Leave the text selected so the user can copy it by hand.
    const range = document.createRange();
    range.selectNodeContents(ui.final);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    ui.copyStatus.textContent = "Select all is done: press Ctrl+C (or ⌘C) to copy.";
  }
}

function remember(storageKey, value, { keepEmpty = false } = {}) {
  try {
    if (value || keepEmpty) localStorage.setItem(storageKey, value);
    else localStorage.removeItem(storageKey);
  } catch {
    // storage disabled (private mode): the page still works, it just forgets
  }
}

function recall(storageKey) {
  try {
    return localStorage.getItem(storageKey);
  } catch {
    return null;
  }
}

function init() {
  const key = recall(KEY_STORAGE);
  if (key) ui.apiKey.value = key;
  const language = recall(LANGUAGE_STORAGE);
  if (language !== null && [...ui.language.options].some((o) => o.value === language)) {
    ui.language.value = language;
  }
  ui.apiKey.addEventListener("input", () => remember(KEY_STORAGE, ui.apiKey.value.trim()));
  ui.language.addEventListener("change", () =>
    remember(LANGUAGE_STORAGE, ui.language.value, { keepEmpty: true }),
  );
  ui.start.addEventListener("click", start);
  ui.stop.addEventListener("click", stop);
  ui.copy.addEventListener("click", copyTranscript);
  setBusy(false);
  setState("idle");
  document.body.dataset.ready = "true";
}

init();
