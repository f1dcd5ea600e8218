/**
 * Live audio sources for mic-broadcast: a capture device through miniaudio
 * ({@linkcode openMicSource}), and two virtual microphones for rooms without one and for tests —
 * a sine tone ({@linkcode ToneSource}) and a song file looped ({@linkcode FileSource}), both
 * paced in real time as a device would deliver them.
 *
 * Every source yields interleaved float blocks (±1.0) at its `sampleRate` and `channels`, each
 * with the capture time of its first sample on this host's wall clock (µs since the Unix
 * epoch, {@linkcode wallClockUs}).
 *
 * @module
 */

import { delay } from "@std/async/delay";
import type { AudioBackend } from "../audio/devices.ts";
import type { Recorder } from "../audio/recorder.ts";
import { songBlocks } from "../station/source.ts";
import { wallClockUs } from "./latency.ts";

export { wallClockUs };

/** One block of captured audio. */
export interface LiveBlock {
  /** Interleaved float samples (±1.0), `channels` per frame. */
  pcm: Float32Array;
  /** Capture time of the block's first sample: µs since the Unix epoch (wall clock). */
  captureUs: number;
}

/** Where live audio comes from. */
export interface LiveSource extends AsyncDisposable {
  /** Sample rate (Hz). */
  readonly sampleRate: number;
  /** Interleaved channels (1 or 2). */
  readonly channels: 1 | 2;
  /** What it is, for logs and the stream title (`tone 440 Hz`, a device name, a file). */
  readonly description: string;
  /** The next block, as soon as it is captured; null when the source ended or was aborted. */
  read(signal: AbortSignal): Promise<LiveBlock | null>;
  /** A capture device: frames it dropped because they were not read in time (ring full). */
  readonly framesLost?: number;
}

/** A source that cannot be opened (bad file, bad tone); `message` is user-facing. */
export class LiveSourceError extends Error {
  override name = "LiveSourceError";
}

/**
 * Paces synthetic blocks like a device: block n (of `blockFrames`) is handed out when its last
 * sample would have been captured, `start + (n + 1) × block` on the wall clock. A late timer is
 * caught up at once; time never drifts (the schedule is computed from the sample count).
 */
class Pacer {
  readonly #rate: number;
  /** Frames per second of this host's wall clock: the rate, off by `clockPpm`. */
  readonly #wallRate: number;
  #startUs: number | undefined;
  #frames = 0;

  constructor(rate: number, clockPpm = 0) {
    this.#rate = rate;
    this.#wallRate = rate * (1 + clockPpm / 1e6);
  }

  /** Waits until `frames` more samples are "captured"; returns the first one's capture time. */
  async next(frames: number, signal: AbortSignal): Promise<number | null> {
    this.#startUs ??= wallClockUs();
    // Capture times on the source's clock; due times on ours (they differ by clockPpm).
    const firstUs = this.#startUs + this.#frames * 1e6 / this.#rate;
    this.#frames += frames;
    const dueUs = this.#startUs + this.#frames * 1e6 / this.#wallRate;
    const waitMs = (dueUs - wallClockUs()) / 1000;
    if (waitMs > 1) {
      try {
        await delay(waitMs, { signal });
      } catch {
        return null;
      }
    }
    return signal.aborted ? null : Math.round(firstUs);
  }
}

/** Options shared by the virtual sources. */
export interface VirtualSourceOptions {
  /** Sample rate. @default {48000} */
  sampleRate?: number;
  /** Channels (the same signal in each). @default {1} */
  channels?: 1 | 2;
  /** Frames per block (one codec frame). @default {480} */
  blockFrames?: number;
  /**
   * Simulates a capture clock this many ppm fast (negative: slow) against the host's: the
   * blocks come that much more often, with capture times on the source's own clock
   * (`--sim-clock-ppm`, for drift tests). @default {0}
   */
  clockPpm?: number;
}

/** A sine tone, paced in real time (`--tone HZ`). */
export class ToneSource implements LiveSource {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
  readonly description: string;
  readonly #hz: number;
  readonly #amplitude: number;
  readonly #block: number;
  readonly #pacer: Pacer;
  #phase = 0;

  /**
   * @param hz tone frequency, 1 .. sampleRate / 2
   * @param options amplitude (0..1, default 0.5 ≈ −6 dBFS) and the block shape
   * @throws {LiveSourceError} a frequency out of range
   */
  constructor(hz: number, options: VirtualSourceOptions & { amplitude?: number } = {}) {
    this.sampleRate = options.sampleRate ?? 48_000;
    this.channels = options.channels ?? 1;
    if (!(hz > 0 && hz < this.sampleRate / 2)) {
      throw new LiveSourceError(
        `--tone must be between 1 and ${this.sampleRate / 2} Hz (half the sample rate), got ${hz}`,
      );
    }
    this.#hz = hz;
    this.#amplitude = options.amplitude ?? 0.5;
    this.#block = options.blockFrames ?? 480;
    this.#pacer = new Pacer(this.sampleRate, options.clockPpm);
    this.description = `tone ${hz} Hz`;
  }

  async read(signal: AbortSignal): Promise<LiveBlock | null> {
    const captureUs = await this.#pacer.next(this.#block, signal);
    if (captureUs === null) return null;
    const ch = this.channels;
    const pcm = new Float32Array(this.#block * ch);
    const step = 2 * Math.PI * this.#hz / this.sampleRate;
    for (let i = 0; i < this.#block; i++) {
      const v = this.#amplitude * Math.sin(this.#phase);
      this.#phase += step;
      for (let c = 0; c < ch; c++) pcm[i * ch + c] = v;
    }
    this.#phase %= 2 * Math.PI;
    return { pcm, captureUs };
  }

  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A song file looped for ever, resampled to 48 kHz (lib/station/source.ts) and paced in real
 * time (`--input FILE`). Stereo files become mono by averaging when `channels` is 1.
 */
export class FileSource implements LiveSource {
  readonly sampleRate = 48_000;
  readonly channels: 1 | 2;
  readonly description: string;
  readonly #path: string;
  readonly #block: number;
  readonly #pacer: Pacer;
  #blocks: AsyncGenerator<Float32Array> | undefined;
  /** Stereo samples decoded but not handed out yet. */
  #pending = new Float32Array(0);
  #passEmpty = true;

  private constructor(path: string, options: VirtualSourceOptions) {
    this.#path = path;
    this.channels = options.channels ?? 1;
    this.#block = options.blockFrames ?? 480;
    this.#pacer = new Pacer(48_000, options.clockPpm);
    this.description = path.split("/").pop() ?? path;
  }

  /**
   * Opens a song file (MP3, WAV, FLAC), checking that it decodes.
   * @throws {LiveSourceError} the file cannot be read or decoded, or holds no audio
   */
  static async open(path: string, options: VirtualSourceOptions = {}): Promise<FileSource> {
    if ((options.sampleRate ?? 48_000) !== 48_000) {
      throw new LiveSourceError("--input needs --rate 48000");
    }
    const source = new FileSource(path, options);
    try {
      const probe = songBlocks(path);
      const first = await probe.next();
      await probe.return(undefined); // closes the decoder
      if (first.done) throw new Error("no audio in the file");
    } catch (error) {
      throw new LiveSourceError(`Cannot use --input ${path}: ${(error as Error).message}`);
    }
    return source;
  }

  async read(signal: AbortSignal): Promise<LiveBlock | null> {
    const need = this.#block * 2;
    while (this.#pending.length < need) {
      this.#blocks ??= songBlocks(this.#path, { signal });
      const r = await this.#blocks.next().catch((error) => {
        if (signal.aborted) return { done: true as const, value: undefined };
        throw error;
      });
      if (signal.aborted) return null;
      if (r.done) {
        // Loop; a pass that yielded nothing would spin.
        if (this.#passEmpty) return null;
        this.#blocks = undefined;
        this.#passEmpty = true;
        continue;
      }
      this.#passEmpty = false;
      const joined = new Float32Array(this.#pending.length + r.value.length);
      joined.set(this.#pending);
      joined.set(r.value, this.#pending.length);
      this.#pending = joined;
    }
    const stereo = this.#pending.subarray(0, need);
    this.#pending = this.#pending.slice(need);
    const captureUs = await this.#pacer.next(this.#block, signal);
    if (captureUs === null) return null;
    if (this.channels === 2) return { pcm: stereo.slice(), captureUs };
    const pcm = new Float32Array(this.#block);
    for (let i = 0; i < this.#block; i++) pcm[i] = (stereo[2 * i]! + stereo[2 * i + 1]!) / 2;
    return { pcm, captureUs };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#blocks?.return(undefined).catch(() => {});
  }
}

/** Options of {@linkcode openMicSource}. */
export interface MicSourceOptions {
  /** Device name or `#INDEX`; the default capture device if unset. */
  device?: string;
  /** Audio backend. @default {"auto"} */
  backend?: AudioBackend;
  /** Stream rate (miniaudio converts from the device's). @default {48000} */
  sampleRate?: number;
  /** Channels. @default {1} */
  channels?: 1 | 2;
  /** Frames per block (one codec frame). @default {480} */
  blockFrames?: number;
  /** Cancels opening. */
  signal?: AbortSignal;
}

/**
 * A capture device (miniaudio, lib/audio/recorder.ts) with a short device period, so a block
 * is handed out soon after it is captured. The capture clock is anchored once: the first
 * block's capture time is its read time minus its duration; later blocks follow by sample
 * count (the device's own clock).
 *
 * @throws {AudioDeviceError} the device is not found or cannot be opened
 */
export async function openMicSource(options: MicSourceOptions = {}): Promise<LiveSource> {
  const { Recorder } = await import("../audio/recorder.ts");
  const sampleRate = options.sampleRate ?? 48_000;
  const channels = options.channels ?? 1;
  const block = options.blockFrames ?? 480;
  const recorder = await Recorder.open({
    sampleRate,
    channels,
    device: options.device,
    backend: options.backend ?? "auto",
    periodMs: Math.max(5, Math.round(block * 1000 / sampleRate)),
    ringMs: 1000,
    chunkMs: block * 1000 / sampleRate,
    signal: options.signal,
  });
  return new MicSource(recorder, sampleRate, channels, block);
}

class MicSource implements LiveSource {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
  readonly description: string;
  readonly #recorder: Recorder;
  readonly #block: number;
  #pending = new Int16Array(0);
  #anchorUs: number | undefined;
  #frames = 0;

  constructor(recorder: Recorder, sampleRate: number, channels: 1 | 2, block: number) {
    this.#recorder = recorder;
    this.sampleRate = sampleRate;
    this.channels = channels;
    this.#block = block;
    this.description = `${recorder.backend}: ${recorder.deviceName || "default device"}`;
  }

  async read(signal: AbortSignal): Promise<LiveBlock | null> {
    const need = this.#block * this.channels;
    while (this.#pending.length < need) {
      let chunk: Int16Array | null;
      try {
        chunk = await this.#recorder.read({ signal });
      } catch {
        return null;
      }
      if (chunk === null) return null;
      if (this.#anchorUs === undefined) {
        const frames = (this.#pending.length + chunk.length) / this.channels;
        this.#anchorUs = wallClockUs() - frames * 1e6 / this.sampleRate;
      }
      const joined = new Int16Array(this.#pending.length + chunk.length);
      joined.set(this.#pending);
      joined.set(chunk, this.#pending.length);
      this.#pending = joined;
    }
    const s16 = this.#pending.subarray(0, need);
    this.#pending = this.#pending.slice(need);
    const pcm = new Float32Array(need);
    for (let i = 0; i < need; i++) pcm[i] = s16[i]! / 32768;
    const captureUs = Math.round(this.#anchorUs! + this.#frames * 1e6 / this.sampleRate);
    this.#frames += this.#block;
    return { pcm, captureUs };
  }

  get framesLost(): number {
    try {
      return this.#recorder.stats().framesLost;
    } catch {
      return this.#lostAtClose;
    }
  }

  #lostAtClose = 0;

  /** Stops and frees the device; awaited, so the process never exits while it is freed. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#lostAtClose = this.#recorder.stats().framesLost;
    } catch { /* closed */ }
    await this.#recorder.close();
  }
}
