// A realtime transcription session: /v1/realtime?intent=transcription in OpenAI's GA shape
// (session.update / session.updated, 24 kHz PCM16). Pieces of audio go out as they are
// recorded (queued until the socket opens), the server's events feed a Transcript, and
// finish() commits the rest, waits (bounded) for the outstanding utterances, then closes.
// One LiveSession per recording; it knows nothing of the DOM: what the user should see
// goes out through the callbacks it is given.

import { LIVE_RATE, base64Pcm16 } from "./pcm.js";
import { UserError } from "./errors.js";

const KEY_SUBPROTOCOL = "openai-insecure-api-key.";
// After Stop, how long to wait for utterances the server is still transcribing.
const FINISH_TIMEOUT_MS = 30000;
const SILENCE_MS = 500; // a pause this long ends an utterance (server VAD)

const ignore = () => {};

export class LiveSession {
  // key: the API key ("" for none); language: "" to detect; transcript: the Transcript the
  // events go to; base: the URL the endpoint is resolved against (the page's).
  // onState(name): the session's state for the page ("connecting", "live", "finishing",
  // "closed", "error"); onError(message): a message for the user; onChange(): the
  // transcript changed; onClosed(): the server (or the network) ended the session.
  constructor({
    key,
    language,
    transcript,
    base,
    onState = ignore,
    onError = ignore,
    onChange = ignore,
    onClosed = ignore,
  }) {
    this.key = key;
    this.language = language;
    this.transcript = transcript;
    this.base = base;
    this.onState = onState;
    this.onError = onError;
    this.onChange = onChange;
    this.onClosed = onClosed;
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
    const url = new URL("v1/realtime?intent=transcription", this.base);
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
    this.onState("connecting");
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
        if (!this.stopping) this.onState("live");
        break;
      case "session.updated":
        this.updatesAnswered += 1;
        break;
      case "error":
        this._onServerError(event.error || {});
        break;
      case "conversation.item.input_audio_transcription.failed": {
        const err = event.error || {};
        this.onError(`Part of the transcript was lost: ${err.message || err.code || "failed"}`);
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
    this.onError(this.lastError);
    if (err.code === "unauthorized" || err.code === "unsupported_intent") {
      this.failed = true; // the server closes the socket next
      this.onState("error");
    }
  }

  _onClose(event) {
    if (this.waiter) this.waiter();
    if (this.closedByUs) return;
    this.failed = true;
    if (!this.lastError) {
      const reason = event.reason ? `: ${event.reason}` : "";
      this.onError(
        this.opened
          ? `The server closed the connection (code ${event.code}${reason}).`
          : `Could not connect to ${this.url} (code ${event.code}${reason}).`,
      );
    }
    this.onState("error");
    this.onClosed();
  }

  // Stop was pressed and the microphone has handed over its last piece: commit the rest,
  // wait until every utterance is final (at most FINISH_TIMEOUT_MS), then close.
  async finish() {
    this.stopping = true;
    if (this.failed) return;
    this.onState("finishing");
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
      this.onError(
        `Stopped waiting after ${FINISH_TIMEOUT_MS / 1000} s: ${missing} part(s) of the ` +
          "transcript did not arrive. The text above is what the server finished.",
      );
    }
    this.close();
    this.onState("closed");
  }

  close() {
    this.closedByUs = true;
    if (!this.ws) return;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(1000, "done");
    }
  }
}
