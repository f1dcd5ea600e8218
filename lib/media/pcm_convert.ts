/**
 * Converts 16-bit PCM between sample rates and channel counts, chunk by chunk: the fallback for
 * a connection whose streams change format while the output (a WAV file, an open device) keeps
 * the first stream's. The soundsock radio no longer does that — it is one 48 kHz stereo station
 * stream for the whole session (lib/media/station.ts, resampled on the server with libsoxr) —
 * and an on-demand song opens the output at its own format, so in practice every stream passes
 * through untouched. Linear interpolation without a filter: cheap and click-free, but it aliases
 * (a server-side resampler is the real answer, see lib/codec/resample.ts).
 *
 * @module
 */

/** PCM format. */
export interface PcmFormat {
  sampleRate: number;
  channels: number;
}

/** A stateful converter from one format to another (state carries across chunks). */
export class PcmConverter {
  readonly from: PcmFormat;
  readonly to: PcmFormat;
  /** Position of the next output frame, in input frames, relative to the current chunk. */
  #pos = 0;
  /** Last input frame of the previous chunk (for interpolating across the boundary). */
  #prev: Float64Array;

  /** Creates a converter. */
  constructor(from: PcmFormat, to: PcmFormat) {
    this.from = from;
    this.to = to;
    this.#prev = new Float64Array(to.channels);
  }

  /** Whether the formats are equal (then {@linkcode convert} returns its input). */
  get identity(): boolean {
    return this.from.sampleRate === this.to.sampleRate && this.from.channels === this.to.channels;
  }

  /** Converts the next chunk of interleaved input. */
  convert(input: Int16Array): Int16Array {
    if (this.identity) return input;
    const mixed = this.#mix(input);
    if (this.from.sampleRate === this.to.sampleRate) return clamp(mixed);
    const ch = this.to.channels;
    const frames = mixed.length / ch;
    const step = this.from.sampleRate / this.to.sampleRate;
    const out: number[] = [];
    // Frame index -1 is the previous chunk's last frame, so interpolation spans chunk borders.
    const at = (f: number, c: number) => (f < 0 ? this.#prev[c]! : mixed[f * ch + c]!);
    // Interpolate between frames i and i+1; stop when i+1 is in the next chunk.
    while (this.#pos < frames - 1) {
      const i = Math.floor(this.#pos);
      const t = this.#pos - i;
      for (let c = 0; c < ch; c++) {
        const a = at(i, c);
        out.push(Math.round(a + (at(i + 1, c) - a) * t));
      }
      this.#pos += step;
    }
    if (frames > 0) {
      for (let c = 0; c < ch; c++) this.#prev[c] = mixed[(frames - 1) * ch + c]!;
      this.#pos -= frames;
    }
    return clamp(out);
  }

  #mix(input: Int16Array): Float64Array {
    const inCh = this.from.channels;
    const outCh = this.to.channels;
    const frames = Math.floor(input.length / inCh);
    const out = new Float64Array(frames * outCh);
    for (let f = 0; f < frames; f++) {
      if (inCh === outCh) {
        for (let c = 0; c < outCh; c++) out[f * outCh + c] = input[f * inCh + c]!;
      } else if (outCh === 1) {
        let sum = 0;
        for (let c = 0; c < inCh; c++) sum += input[f * inCh + c]!;
        out[f] = sum / inCh;
      } else {
        // Spread the first input channels over the outputs (mono → all, stereo → L/R…).
        for (let c = 0; c < outCh; c++) out[f * outCh + c] = input[f * inCh + (c % inCh)]!;
      }
    }
    return out;
  }
}

function clamp(values: ArrayLike<number>): Int16Array {
  return Int16Array.from(
    values as ArrayLike<number>,
    (v) => Math.max(-32768, Math.min(32767, Math.round(v))),
  );
}
