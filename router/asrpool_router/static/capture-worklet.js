// AudioWorklet processor: hands the microphone's samples, mixed to mono, to the page.
//
// Runs on the audio rendering thread; batches the 128-frame render quanta into
// ~20 ms blocks so the page gets ~50 messages a second instead of ~375.

const BLOCK = 1024;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length > 0) {
      const frames = channels[0].length;
      for (let i = 0; i < frames; i++) {
        let sum = 0;
        for (let c = 0; c < channels.length; c++) sum += channels[c][i];
        this.block[this.filled++] = sum / channels.length;
        if (this.filled === BLOCK) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(BLOCK);
          this.filled = 0;
        }
      }
    }
    return true; // keep running while the page holds the node
  }
}

registerProcessor("asrpool-capture", CaptureProcessor);
