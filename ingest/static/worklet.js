// Captures microphone audio, resamples it to 16 kHz in the worklet (windowed-sinc low-pass
// interpolation, so no browser has to open a 16 kHz AudioContext) and posts 40 ms frames of
// 16-bit PCM with their RMS level.
const TARGET_RATE = 16000;
const FRAME_SAMPLES = 640; // 40 ms
const HALF_TAPS = 16;      // kernel half-width, in output samples

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE;             // input samples per output sample
    this.cutoff = 0.48 / Math.max(1, this.step);      // cycles per input sample
    this.half = Math.ceil(HALF_TAPS * Math.max(1, this.step));
    this.buffer = new Float32Array(0);
    this.position = this.half;                        // next output, in buffer samples
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
    this.energy = 0;
  }

  kernel(distance) {
    const x = 2 * this.cutoff * distance;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const window = 0.5 + 0.5 * Math.cos(Math.PI * distance / (this.half + 1));
    return sinc * window;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const joined = new Float32Array(this.buffer.length + channel.length);
    joined.set(this.buffer);
    joined.set(channel, this.buffer.length);
    let position = this.position;
    while (position + this.half < joined.length) {
      const first = Math.ceil(position - this.half);
      const last = Math.floor(position + this.half);
      let sum = 0;
      let weights = 0;
      for (let k = first; k <= last; k++) {
        const w = this.kernel(k - position);
        sum += joined[k] * w;
        weights += w;
      }
      this.emit(sum / weights);
      position += this.step;
    }
    const keep = Math.max(0, Math.floor(position - this.half));
    this.buffer = joined.slice(keep);
    this.position = position - keep;
    return true;
  }

  emit(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.frame[this.filled++] = Math.round(clipped * 32767);
    this.energy += clipped * clipped;
    if (this.filled === FRAME_SAMPLES) {
      const level = Math.sqrt(this.energy / FRAME_SAMPLES);
      this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
      this.energy = 0;
    }
  }
}

registerProcessor("capture-16k", CaptureProcessor);
