// AudioWorklet: one captured stream -> 16 kHz mono PCM16 blocks on the session clock.
//
// Runs in the audio rendering thread. Each render quantum is mixed to mono, low-pass filtered
// (windowed sinc, cut-off 7.2 kHz, so 44.1/48 kHz input does not alias into speech) and sampled
// at 16 kHz by linear interpolation of the filtered signal. Output sample k sits at input frame
// k * sampleRate / 16000 of the AudioContext's frame counter (`currentFrame`), which every
// worklet of the context shares: the mic and the call are on one clock and cannot drift apart,
// and a block's `index` is simply k. A hole in the input (a track ended, a new source) restarts
// the filter; the next block's index shows the gap to the server.
const OUT_RATE = 16000;
const TAPS = 63;

function lowpass(rate) {
  const fc = 7200 / rate; // cycles per input sample
  const h = new Float32Array(TAPS);
  const m = (TAPS - 1) / 2;
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const x = i - m;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (TAPS - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < TAPS; i++) h[i] /= sum;
  return h;
}

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.channel = o.channel | 0;
    this.blockSamples = o.blockSamples || 1600; // 100 ms
    this.ratio = sampleRate / OUT_RATE;
    this.delay = (TAPS - 1) / 2; // the filter's group delay, in input frames
    this.h = lowpass(sampleRate);
    this.hist = new Float32Array(TAPS); // last TAPS input samples, ring
    this.histPos = 0;
    this.ring = new Float32Array(8192); // filtered samples by input frame (mod size)
    this.nextFrame = -1; // input frame expected next; -1: not running
    this.k = 0; // next output sample index
    this.block = new Int16Array(this.blockSamples);
    this.blockLen = 0;
    this.blockStart = 0;
    this.sumSq = 0;
    this.stopped = false;
    this.port.onmessage = (e) => {
      if (e.data === "flush") this.flush();
      if (e.data === "stop") { this.flush(); this.stopped = true; }
    };
  }

  flush() {
    if (this.blockLen === 0) return;
    const pcm = this.block.slice(0, this.blockLen);
    const rms = Math.sqrt(this.sumSq / this.blockLen);
    this.port.postMessage({ channel: this.channel, index: this.blockStart, pcm, rms }, [pcm.buffer]);
    this.blockLen = 0;
    this.sumSq = 0;
  }

  restart(frame) {
    this.flush();
    this.hist.fill(0);
    this.histPos = 0;
    // The first output whose interpolation points are both filtered after this restart.
    this.k = Math.ceil((frame - this.delay + TAPS) / this.ratio);
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (!input || input.length === 0 || input[0].length === 0) {
      if (this.nextFrame >= 0) { this.flush(); this.nextFrame = -1; }
      return true;
    }
    const n = input[0].length;
    const f0 = currentFrame;
    if (f0 !== this.nextFrame) this.restart(f0);
    this.nextFrame = f0 + n;
    const chans = input.length;
    const h = this.h;
    const ring = this.ring;
    const mask = ring.length - 1;
    for (let i = 0; i < n; i++) {
      let x = 0;
      for (let c = 0; c < chans; c++) x += input[c][i];
      this.hist[this.histPos] = x / chans;
      this.histPos = (this.histPos + 1) % TAPS;
      let y = 0;
      let p = this.histPos; // oldest sample
      for (let j = TAPS - 1; j >= 0; j--) { // h is symmetric; order does not matter
        y += h[j] * this.hist[p];
        p = p + 1 === TAPS ? 0 : p + 1;
      }
      // y is the filtered signal at input time (f0 + i - delay).
      const t = f0 + i - this.delay;
      ring[t & mask] = y;
      // Emit every output sample whose two neighbours are now known.
      for (;;) {
        const pos = this.k * this.ratio;
        const i0 = Math.floor(pos);
        if (i0 + 1 > t) break;
        const frac = pos - i0;
        const v = ring[i0 & mask] * (1 - frac) + ring[(i0 + 1) & mask] * frac;
        if (this.blockLen === 0) this.blockStart = this.k;
        const s = Math.max(-1, Math.min(1, v));
        this.block[this.blockLen++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        this.sumSq += s * s;
        this.k++;
        if (this.blockLen === this.blockSamples) this.flush();
      }
    }
    return true;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
