// The microphone: capture → mono floats (AudioWorklet, else ScriptProcessor) → resampled,
// band-limited PCM16 in pieces of PIECE_MS. One Capture per recording; it holds all of its
// state (stream, audio context, nodes, resampler) and gives everything back on stop().
// The audio math is pcm.js's; capture-worklet.js is the worklet's processor.

import { PIECE_MS, PieceBuffer, Resampler, TARGET_RATE, floatToPcm16 } from "./pcm.js";
import { UserError } from "./errors.js";

// The raw signal: the browser's call processing (noise suppression, echo cancellation,
// gain control) is tuned for people listening, and its artefacts cost Whisper words.
// Measured with Chrome's fake microphone on synthetic speech: with it on, the captured
// audio was 0.8 dB SNR against the file (gain pumping, clipped peaks); off, 33 dB.
const MICROPHONE = Object.freeze({
  channelCount: 1,
  echoCancellation: false,
  noiseSuppression: false,
  autoGainControl: false,
});

// Microphone → PCM16 pieces of 100 ms at `rate` (band-limited to `bandHz`), each handed to
// onPiece in order. `method` says which node captured ("AudioWorklet" or "ScriptProcessor").
export class Capture {
  constructor(onPiece, rate = TARGET_RATE, bandHz = Infinity) {
    this.onPiece = onPiece;
    this.rate = rate;
    this.bandHz = bandHz;
    this.samples = 0; // samples at `rate` produced so far
    this.stopped = false;
  }

  get seconds() {
    return this.samples / this.rate;
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
