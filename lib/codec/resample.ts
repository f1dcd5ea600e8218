/**
 * Streaming resampler to the station format, 48 kHz stereo float, on libsoxr (Debian
 * `libsoxr0`) through Deno FFI: the same library and settings as ffmpeg's
 * `aresample=resampler=soxr` (SOXR_HQ = 20-bit precision, linear phase, passband to 0.91 of
 * the lower Nyquist, i.e. flat to 20 kHz from 44.1 kHz).
 *
 * Mono input is duplicated to both channels; 48 kHz input is passed through untouched (only
 * converted to float). The output length is exact: after {@linkcode Resampler.flush} the total
 * is `round(inputFrames × 48000 / inRate)`, what ffmpeg produces, with soxr's filter delay
 * already removed (output frame 0 lines up with input frame 0).
 *
 * @example
 * ```ts
 * using rs = new Resampler({ inRate: 22_050, inChannels: 1 });
 * const a = rs.process(new Int16Array(2205)); // Float32Array, stereo
 * const b = rs.flush();                       // the rest: a.length + b.length = 4800 * 2
 * ```
 *
 * @module
 */

import { _cStringAt, loadSoxr, type SoxrLib } from "./ffi.ts";

/** The station rate. */
export const OUT_RATE = 48_000;
/** The station's channel count. */
export const OUT_CHANNELS = 2;

const SOXR_FLOAT32_I = 0;
const SOXR_HQ = 4;
/** ffmpeg's soxr defaults: precision 20 bits, cutoff 0.91 (libswresample). */
const PRECISION_BITS = 20;
const PASSBAND_END = 0.91;

/** Options of {@linkcode Resampler}. */
export interface ResamplerOptions {
  /** Input sample rate in Hz (1000 ... 384000). */
  inRate: number;
  /** Interleaved input channels: 1 (duplicated to stereo) or 2. */
  inChannels: 1 | 2;
}

/**
 * A streaming resampler: interleaved s16 or float input at any rate, 1 or 2 channels; 48 kHz
 * stereo interleaved float output. Dispose it (`using`) to free the native state.
 */
export class Resampler implements Disposable {
  /** Input rate in Hz. */
  readonly inRate: number;
  /** Input channels. */
  readonly inChannels: 1 | 2;
  #lib: SoxrLib | undefined;
  #soxr: Deno.PointerValue = null;
  #framesIn = 0;
  #framesOut = 0;
  #flushed = false;
  #closed = false;
  #scratch = new Float32Array(0);
  #idone = new BigUint64Array(1);
  #odone = new BigUint64Array(1);

  /**
   * @throws {RangeError} bad rate or channel count
   * @throws {CodecLibraryError} libsoxr is missing (names `apt-get install libsoxr0`)
   */
  constructor(options: ResamplerOptions) {
    const { inRate, inChannels } = options;
    if (!Number.isInteger(inRate) || inRate < 1000 || inRate > 384_000) {
      throw new RangeError(`Resampler input rate must be 1000 ... 384000 Hz, got ${inRate}`);
    }
    if (inChannels !== 1 && inChannels !== 2) {
      throw new RangeError(`Resampler input channels must be 1 or 2, got ${inChannels}`);
    }
    this.inRate = inRate;
    this.inChannels = inChannels;
    if (inRate === OUT_RATE) return; // pass-through, no soxr
    const lib = loadSoxr();
    const io = new Uint8Array(lib.soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I));
    const q = new Uint8Array(lib.soxr_quality_spec(BigInt(SOXR_HQ), 0n));
    const qv = new DataView(q.buffer);
    qv.setFloat64(0, PRECISION_BITS, true); // precision
    qv.setFloat64(16, PASSBAND_END, true); // passband_end
    const err = new BigUint64Array(1);
    const soxr = lib.soxr_create(inRate, OUT_RATE, inChannels, err, io, q, null);
    if (soxr === null) {
      const why = _cStringAt(Deno.UnsafePointer.create(err[0]!)) ?? "unknown error";
      throw new RangeError(`Cannot create resampler ${inRate} → ${OUT_RATE} Hz: ${why}`);
    }
    this.#lib = lib;
    this.#soxr = soxr;
  }

  /** Input frames consumed so far. */
  get framesIn(): number {
    return this.#framesIn;
  }

  /** Output frames (48 kHz stereo) produced so far. */
  get framesOut(): number {
    return this.#framesOut;
  }

  /** Output frames the whole input so far will make once flushed: round(in × 48000 / inRate). */
  get expectedFramesOut(): number {
    return expectedOutputFrames(this.#framesIn, this.inRate);
  }

  /**
   * Resamples a block of interleaved input (s16 or float ±1.0, `inChannels` channels). Returns
   * what is ready: interleaved stereo float at 48 kHz (may be shorter than the block's share;
   * the filter's delay comes out at {@linkcode flush}).
   *
   * @throws {RangeError} the sample count is not a multiple of the channel count
   * @throws {TypeError} after flush or close
   */
  process(input: Int16Array | Float32Array): Float32Array<ArrayBuffer> {
    this.#writable();
    if (input.length % this.inChannels !== 0) {
      throw new RangeError(
        `Resampler input must be whole frames of ${this.inChannels} samples, got ${input.length}`,
      );
    }
    const frames = input.length / this.inChannels;
    this.#framesIn += frames;
    const f32 = this.#toFloat(input);
    if (this.#soxr === null) return this.#emit(f32, frames);
    return this.#run(f32, frames);
  }

  /**
   * Ends the input and returns the rest, so that the total output is exactly
   * {@linkcode expectedFramesOut} frames. Later calls to process / flush throw.
   */
  flush(): Float32Array<ArrayBuffer> {
    this.#writable();
    this.#flushed = true;
    const parts: Float32Array<ArrayBuffer>[] = [];
    if (this.#soxr !== null) {
      const lib = this.#lib!;
      const cap = 4096;
      const out = new Float32Array(cap * this.inChannels);
      for (let guard = 0; guard < 1000; guard++) {
        const e = lib.soxr_process(this.#soxr, null, 0n, null, out, BigInt(cap), this.#odone);
        if (e !== null) throw new RangeError(`Cannot resample: ${_cStringAt(e)}`);
        const n = Number(this.#odone[0]);
        if (n === 0) break;
        parts.push(this.#emit(out, n));
      }
    }
    // soxr's own total can differ from round() by a frame: pad with silence or trim to exact.
    const rest = _concat(parts);
    const diff = (this.expectedFramesOut - this.#framesOut) * OUT_CHANNELS;
    this.#framesOut = this.expectedFramesOut;
    if (diff === 0) return rest;
    const result = new Float32Array(Math.max(0, rest.length + diff));
    result.set(rest.subarray(0, result.length));
    return result;
  }

  /** Frees the native resampler. A no-op the second time. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#soxr !== null) this.#lib!.soxr_delete(this.#soxr);
    this.#soxr = null;
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #writable(): void {
    if (this.#closed) throw new TypeError("Cannot use a closed Resampler");
    if (this.#flushed) throw new TypeError("Cannot use a Resampler after flush()");
  }

  #toFloat(input: Int16Array | Float32Array): Float32Array {
    if (input instanceof Float32Array) return input;
    if (this.#scratch.length < input.length) this.#scratch = new Float32Array(input.length);
    const f = this.#scratch;
    for (let i = 0; i < input.length; i++) f[i] = input[i]! / 32768;
    return f.subarray(0, input.length);
  }

  /** Feeds soxr until it has taken every input frame; collects what it outputs. */
  #run(input: Float32Array, frames: number): Float32Array<ArrayBuffer> {
    const lib = this.#lib!;
    const ch = this.inChannels;
    const cap = Math.ceil(frames * OUT_RATE / this.inRate) + 256;
    const out = new Float32Array(cap * ch);
    const parts: Float32Array<ArrayBuffer>[] = [];
    let used = 0;
    for (let guard = 0; guard < 10_000; guard++) {
      const rest = input.subarray(used * ch) as Float32Array<ArrayBuffer>;
      const e = lib.soxr_process(
        this.#soxr,
        rest,
        BigInt(frames - used),
        this.#idone,
        out,
        BigInt(cap),
        this.#odone,
      );
      if (e !== null) throw new RangeError(`Cannot resample: ${_cStringAt(e)}`);
      used += Number(this.#idone[0]);
      const n = Number(this.#odone[0]);
      if (n > 0) parts.push(this.#emit(out, n));
      if (used >= frames && n < cap) break;
    }
    return _concat(parts);
  }

  /** Copies `frames` frames of `inChannels` float to a fresh stereo array; counts them. */
  #emit(src: Float32Array, frames: number): Float32Array<ArrayBuffer> {
    this.#framesOut += frames;
    if (this.inChannels === 2) return src.slice(0, frames * 2);
    const out = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) out[2 * i] = out[2 * i + 1] = src[i]!;
    return out;
  }
}

function _concat(parts: Float32Array<ArrayBuffer>[]): Float32Array<ArrayBuffer> {
  if (parts.length === 1) return parts[0]!;
  const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/**
 * Output frames at 48 kHz for `inputFrames` at `inRate`: round(in × 48000 / inRate), the count
 * ffmpeg's `aresample` produces. Exact integer arithmetic for any realistic length.
 */
export function expectedOutputFrames(inputFrames: number, inRate: number): number {
  const num = BigInt(inputFrames) * BigInt(OUT_RATE);
  const den = BigInt(inRate);
  return Number((2n * num + den) / (2n * den));
}

/**
 * Float samples (±1.0) to s16 with rounding and clipping, e.g. for a PCM station.
 */
export function floatToS16(input: Float32Array): Int16Array<ArrayBuffer> {
  const out = new Int16Array(input.length);
  for (let i = 0; i < input.length; i++) {
    const v = Math.round(input[i]! * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}
