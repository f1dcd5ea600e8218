/**
 * Helpers for the lib/codec tests: ffmpeg as the reference, and the signal measures the tests
 * assert on (SNR, correlation, tone amplitude).
 *
 * @module
 */

/** Path of a song in songs/, from this file. */
export function songPath(name: string): string {
  return decodeURIComponent(new URL(`../../songs/${name}`, import.meta.url).pathname);
}

/** Runs ffmpeg with `args` (output to stdout) and returns stdout as interleaved f32le. */
export async function ffmpegF32(args: string[], stdin?: Uint8Array): Promise<Float32Array> {
  const child = new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-nostdin", ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(`ffmpeg ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  const bytes = out.stdout;
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** ffmpeg's decode of a song at its own rate and channel count, as interleaved float. */
export function ffmpegDecodeF32(path: string): Promise<Float32Array> {
  return ffmpegF32(["-i", path, "-f", "f32le", "-c:a", "pcm_f32le", "-"]);
}

/** ffmpeg's `aresample=resampler=soxr` of a song to 48 kHz (channels unchanged), float. */
export function ffmpegSoxr48(path: string): Promise<Float32Array> {
  return ffmpegF32([
    "-i",
    path,
    "-af",
    "aresample=resampler=soxr",
    "-ar",
    "48000",
    "-f",
    "f32le",
    "-c:a",
    "pcm_f32le",
    "-",
  ]);
}

/**
 * SNR in dB of `x` against `ref`: 10·log10(Σref² / Σ(ref − x)²) over frames [from, to).
 * `ref` has `refChannels` (1 or 2) interleaved; `x` is stereo (a mono ref is compared with
 * both channels).
 */
export function snrDb(
  ref: Float32Array,
  refChannels: number,
  x: Float32Array,
  from = 0,
  to = ref.length / refChannels,
): number {
  let s = 0, e = 0;
  for (let i = from; i < to; i++) {
    for (let c = 0; c < 2; c++) {
      const r = ref[i * refChannels + (refChannels === 1 ? 0 : c)]!;
      const d = r - x[i * 2 + c]!;
      s += r * r;
      e += d * d;
    }
  }
  return 10 * Math.log10(s / e);
}

/** Amplitude of a tone at `freq` Hz in one channel of interleaved samples (Goertzel, Hann). */
export function toneAmplitude(
  x: ArrayLike<number>,
  channels: number,
  channel: number,
  rate: number,
  freq: number,
): number {
  const n = Math.floor(x.length / channels);
  const w = 2 * Math.PI * freq / rate;
  let re = 0, im = 0, win = 0;
  for (let i = 0; i < n; i++) {
    const h = 0.5 - 0.5 * Math.cos(2 * Math.PI * i / (n - 1));
    const v = x[i * channels + channel]! * h;
    re += v * Math.cos(w * i);
    im -= v * Math.sin(w * i);
    win += h;
  }
  return 2 * Math.hypot(re, im) / win;
}

/** Pearson correlation of a[aFrom ..] and b[bFrom ..] over n samples. */
export function correlation(
  a: ArrayLike<number>,
  aFrom: number,
  b: ArrayLike<number>,
  bFrom: number,
  n: number,
): number {
  let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (let i = 0; i < n; i++) {
    const x = a[aFrom + i]!, y = b[bFrom + i]!;
    sa += x;
    sb += y;
    saa += x * x;
    sbb += y * y;
    sab += x * y;
  }
  const cov = sab - sa * sb / n;
  return cov / Math.sqrt((saa - sa * sa / n) * (sbb - sb * sb / n));
}

/** RMS of samples. */
export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / x.length);
}

/** Largest absolute sample. */
export function peak(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** Interleaved stereo sine tones (float ±1), `seconds` long at `rate`. */
export function stereoTones(
  rate: number,
  seconds: number,
  left: { freq: number; amp: number },
  right: { freq: number; amp: number },
): Float32Array<ArrayBuffer> {
  const n = Math.round(rate * seconds);
  const x = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    x[2 * i] = left.amp * Math.sin(2 * Math.PI * left.freq * i / rate);
    x[2 * i + 1] = right.amp * Math.sin(2 * Math.PI * right.freq * i / rate);
  }
  return x;
}

/** Joins typed arrays of one kind. */
export function concatF32(parts: Float32Array[]): Float32Array<ArrayBuffer> {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Joins Int16Arrays. */
export function concatI16(parts: Int16Array[]): Int16Array<ArrayBuffer> {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
