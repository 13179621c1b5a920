// Audio helpers for the recorder page: resample (24 kHz for the realtime socket, OpenAI's
// rate; 16 kHz for uploads), float → PCM16, 100 ms pieces, base64, WAV files for uploads.
//
// Pure: arrays in, arrays out; no DOM, no audio nodes, no network. recorder.js calls these;
// tests/integration/test_browser_page.py runs them in a real browser.

export const TARGET_RATE = 16000;
// A GA realtime session takes PCM16 at 24 kHz only; the server hears it at 16 kHz.
export const LIVE_RATE = 24000;
// What survives the server's 16 kHz (90 % of its Nyquist frequency): the live stream keeps
// only this band, so the server's resampling has nothing above 8 kHz to fold back.
export const SPEECH_BAND_HZ = 7200;
export const PIECE_MS = 100;

// Band-limited resampling with a windowed-sinc kernel, one chunk at a time.
// Each output sample is a weighted sum of the input around its position; the
// kernel's cutoff sits below the lower Nyquist frequency, so 48 kHz speech loses
// its >8 kHz content instead of folding it back as noise (plain decimation would).
export class Resampler {
  constructor(inRate, outRate = TARGET_RATE, zeroCrossings = 8, bandHz = Infinity) {
    if (!(inRate > 0) || !(outRate > 0)) throw new RangeError("sample rates must be positive");
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    // Cutoff in cycles per input sample: 90 % of the lower Nyquist frequency, or bandHz.
    this.cutoff = Math.min(0.45 * Math.min(1, outRate / inRate), bandHz / inRate);
    this.passThrough = inRate === outRate && !Number.isFinite(bandHz);
    this.halfWidth = zeroCrossings / (2 * this.cutoff); // input samples either side
    this.buffer = new Float32Array(0);
    this.bufferStart = 0; // absolute index of buffer[0]
    this.position = 0; // absolute input position of the next output sample
  }

  // Output samples for `input` (Float32Array); the last ~halfWidth input samples wait for
  // what follows them, so output lags input by a millisecond or so. flush() gives the rest.
  push(input) {
    if (this.passThrough) return Float32Array.from(input);
    this._append(input);
    return this._run(this.bufferStart + this.buffer.length - this.halfWidth);
  }

  // Everything still owed, as if silence followed the input.
  flush() {
    if (this.passThrough) return new Float32Array(0);
    return this._run(this.bufferStart + this.buffer.length);
  }

  _append(input) {
    const joined = new Float32Array(this.buffer.length + input.length);
    joined.set(this.buffer);
    joined.set(input, this.buffer.length);
    this.buffer = joined;
  }

  _run(limit) {
    const out = [];
    while (this.position < limit) {
      out.push(this._sampleAt(this.position));
      this.position += this.step;
    }
    // Keep only the input that later outputs still reach.
    const keepFrom = Math.max(0, Math.floor(this.position - this.halfWidth) - this.bufferStart);
    if (keepFrom > 0) {
      this.buffer = this.buffer.slice(Math.min(keepFrom, this.buffer.length));
      this.bufferStart += keepFrom;
    }
    return Float32Array.from(out);
  }

  _sampleAt(t) {
    const first = Math.max(this.bufferStart, Math.ceil(t - this.halfWidth));
    const last = Math.min(this.bufferStart + this.buffer.length - 1, Math.floor(t + this.halfWidth));
    let sum = 0;
    let weights = 0;
    for (let i = first; i <= last; i++) {
      const x = i - t;
      const w = kernel(x, this.cutoff, this.halfWidth);
      sum += w * this.buffer[i - this.bufferStart];
      weights += w;
    }
    // Normalising by the weights keeps the DC gain exactly 1, also at the edges.
    return weights > 0 ? sum / weights : 0;
  }
}

function kernel(x, cutoff, halfWidth) {
  const arg = 2 * cutoff * x;
  const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
  // Blackman window over [-halfWidth, halfWidth].
  const n = (x + halfWidth) / (2 * halfWidth);
  const window = 0.42 - 0.5 * Math.cos(2 * Math.PI * n) + 0.08 * Math.cos(4 * Math.PI * n);
  return sinc * window;
}

// Float samples in [-1, 1] → signed 16-bit integers (clipped).
export function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = Math.round(s < 0 ? s * 0x8000 : s * 0x7fff);
  }
  return out;
}

// Cuts a stream of PCM16 samples into pieces of exactly `size` samples (100 ms at 16 kHz
// unless told otherwise).
export class PieceBuffer {
  constructor(size = (TARGET_RATE * PIECE_MS) / 1000) {
    this.size = size;
    this.current = new Int16Array(size);
    this.filled = 0;
  }

  push(samples) {
    const pieces = [];
    let offset = 0;
    while (offset < samples.length) {
      const n = Math.min(this.size - this.filled, samples.length - offset);
      this.current.set(samples.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === this.size) {
        pieces.push(this.current);
        this.current = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return pieces;
  }

  // The last, shorter piece (or null when nothing is left).
  flush() {
    if (this.filled === 0) return null;
    const rest = this.current.slice(0, this.filled);
    this.current = new Int16Array(this.size);
    this.filled = 0;
    return rest;
  }
}

// Little-endian bytes of PCM16 samples, whatever the machine's byte order.
export function pcm16Bytes(samples) {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i], true);
  return bytes;
}

export function base64Pcm16(samples) {
  const bytes = pcm16Bytes(samples);
  let binary = "";
  // String.fromCharCode takes its arguments on the stack: go in slices.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

// A mono PCM16 WAV file (ArrayBuffer) holding the pieces, in order.
export function wavFile(pieces, rate = TARGET_RATE) {
  const count = pieces.reduce((n, p) => n + p.length, 0);
  const buffer = new ArrayBuffer(44 + count * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => {
    for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + count * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, count * 2, true);
  let offset = 44;
  for (const piece of pieces) {
    for (let i = 0; i < piece.length; i++, offset += 2) view.setInt16(offset, piece[i], true);
  }
  return buffer;
}

// Root-mean-square level of PCM16 samples, 0…1 (for the input meter).
export function level(samples) {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / samples.length) / 32768;
}
