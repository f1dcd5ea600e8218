/**
 * The playout of a live broadcast over a stream transport (tls-client radio, docs/PROTOCOL.md
 * §5.4): TCP delivers every packet in order, so there is no jitter buffer to reorder — the
 * target delay is a prebuffer and the drift controller keeps it:
 *
 * - the first packet is played `bufferMs` after it arrived (the margin that absorbs arrival
 *   jitter, held in the device queue and the packets not yet decoded);
 * - every output block goes through the same {@linkcode DriftController} as udp-client's: the
 *   level (device queue + packets not yet decoded, from their capture times) is kept at the
 *   level it settled at by single-frame drops / inserts capped at ±0.05 %; what came while the
 *   device opened is skipped first, so the delay latched is the live one;
 * - `--buffer auto`: {@linkcode AutoBuffer} watches the arrival jitter; when it picks another
 *   size, the delay steps once (silence written to grow, audio skipped to shrink) and the
 *   controller keeps the new level.
 *
 * Pure logic around the caller's clock and device, like lib/live/playout_control.ts.
 *
 * @module
 */

import { adjustBlock, AutoBuffer, DriftController, livePeriodMs } from "./playout_control.ts";
import { LatencyMeter, type LiveLatencyReport } from "./latency.ts";

/** A live capture's default buffer over TLS (ms), as over UDP (lib/udp/client.ts). */
export const LIVE_STREAM_BUFFER_MS = 40;

/**
 * Parses `--buffer MS|auto` (a whole number of ms, 0..10000, or `auto`).
 * @throws {RangeError} anything else, with a one-line message naming the value
 */
export function parseLiveBuffer(text: string): number | "auto" {
  if (text === "auto") return "auto";
  const ms = Number(text);
  if (text.trim() === "" || !Number.isFinite(ms)) {
    throw new RangeError(`"${text}" is neither a number of ms nor auto`);
  }
  if (!Number.isInteger(ms)) throw new RangeError(`"${text}" is not a whole number`);
  if (ms < 0) throw new RangeError(`${ms} is below the minimum 0`);
  if (ms > 10_000) throw new RangeError(`${ms} is above the maximum 10000`);
  return ms;
}

/** Options of {@linkcode LiveOutput}. */
export interface LiveOutputOptions {
  /** Target delay in ms, or `auto`. @default {LIVE_STREAM_BUFFER_MS} */
  bufferMs?: number | "auto";
}

/** See the module doc. One per live stream. */
export class LiveOutput {
  /** The buffer now (ms): the fixed one, or what `auto` chose. */
  bufferMs: number;
  /** The device period to open the output with (ms). */
  readonly periodMs: number;
  readonly #auto: AutoBuffer | undefined;
  readonly #maxStartMs: number;
  #drift: DriftController | undefined;
  #firstArrivalMs: number | undefined;
  #newestCaptureUs = -Infinity;
  #packets = 0;
  /** An auto step not applied yet, ms (the output's rate is known in adjust). */
  #stepMs = 0;
  /** Frames of silence to write (positive) or of audio to skip (negative): an auto step. */
  #step = 0;
  readonly #latency = new LatencyMeter();
  readonly #deviceLatency = new LatencyMeter();

  /** Creates the control for one live stream. */
  constructor(options: LiveOutputOptions = {}) {
    const b = options.bufferMs ?? LIVE_STREAM_BUFFER_MS;
    this.#auto = b === "auto" ? new AutoBuffer() : undefined;
    this.bufferMs = b === "auto" ? LIVE_STREAM_BUFFER_MS : b;
    this.periodMs = livePeriodMs(this.bufferMs);
    const most = this.#auto ? this.#auto.sizesMs[this.#auto.sizesMs.length - 1]! : this.bufferMs;
    this.#maxStartMs = most + 10;
  }

  /** A packet captured at `captureUs` (sender's wall clock) arrived now (`nowMs`, `nowUs`). */
  onArrival(captureUs: number, nowMs: number, nowUs: number): void {
    this.#firstArrivalMs ??= nowMs;
    if (captureUs > this.#newestCaptureUs) this.#newestCaptureUs = captureUs;
    this.#packets++;
    const auto = this.#auto;
    if (!auto) return;
    auto.onPacket(captureUs, nowUs);
    if (this.#packets % 50 !== 0 || !auto.ready) return;
    const next = auto.targetMs;
    if (next === this.bufferMs) return;
    this.#stepMs += next - this.bufferMs;
    this.bufferMs = next;
  }

  /** Milliseconds (on the caller's `nowMs` clock) until the first packet may be played. */
  startWaitMs(nowMs: number): number {
    if (this.#drift || this.#firstArrivalMs === undefined) return 0;
    return Math.max(0, this.#firstArrivalMs + this.bufferMs - nowMs);
  }

  /**
   * One decoded block of the packet captured at `captureUs`, about to be written to a device
   * whose queue holds `queuedFrames` (lib/live/live_device.ts levelFrames): returns what to
   * write instead (drift-corrected, skipped, or with an auto step's silence in front).
   */
  adjust(
    pcm: Int16Array,
    format: { sampleRate: number; channels: number },
    queuedFrames: number,
    captureUs: number,
  ): Int16Array {
    const { sampleRate, channels } = format;
    const drift = this.#drift ??= new DriftController({
      sampleRate,
      maxStartMs: this.#maxStartMs,
      maxExcessMs: Math.max(2 * this.periodMs, 30),
    });
    if (this.#stepMs !== 0) {
      const frames = Math.round(this.#stepMs * sampleRate / 1000);
      this.#stepMs = 0;
      this.#step += frames;
      if (!Number.isNaN(drift.targetFrames)) drift.targetFrames += frames;
    }
    if (this.#step < 0) {
      // Shrinking: skip audio (once, like Jamulus's buffer resize).
      const skip = Math.min(pcm.length / channels, -this.#step);
      this.#step += skip;
      pcm = pcm.subarray(skip * channels);
      if (pcm.length === 0) return pcm;
    }
    const frames = pcm.length / channels;
    const aheadFrames = Math.max(0, this.#newestCaptureUs - captureUs) * sampleRate / 1e6;
    let out = adjustBlock(pcm, channels, drift.update(queuedFrames + aheadFrames, frames));
    if (this.#step > 0 && out.length > 0) {
      // Growing: silence in front of this block.
      const grown = new Int16Array(out.length + this.#step * channels);
      grown.set(out, this.#step * channels);
      out = grown;
      this.#step = 0;
    }
    return out;
  }

  /**
   * Records one packet handed to the output at `nowUs` (wall clock) with `queuedFrames` in
   * the device (undefined: not a device) — the latency statistics.
   */
  record(captureUs: number, nowUs: number, queuedFrames?: number, sampleRate = 48_000): void {
    this.#latency.record(captureUs, nowUs);
    if (queuedFrames !== undefined) {
      this.#deviceLatency.record(captureUs, nowUs + queuedFrames * 1e6 / sampleRate);
    }
  }

  /** Packets measured. */
  get count(): number {
    return this.#latency.count;
  }

  /** The statistics: latency, the device's share, the drift correction. */
  report(): LiveLatencyReport {
    const r: LiveLatencyReport = { ...this.#latency.report(), bufferMs: this.bufferMs };
    if (this.#deviceLatency.count > 0) {
      const d = this.#deviceLatency.report();
      r.device = { medianMs: d.medianMs, p95Ms: d.p95Ms, p99Ms: d.p99Ms };
    }
    const drift = this.#drift;
    if (drift) {
      r.driftPpm = Math.round(drift.driftPpm * 10) / 10;
      r.framesDropped = drift.dropped;
      r.framesInserted = drift.inserted;
      r.framesSkipped = drift.skipped;
      if (drift.levelMs !== undefined) r.levelMs = Math.round(drift.levelMs * 10) / 10;
      if (drift.targetMs !== undefined) r.targetMs = Math.round(drift.targetMs * 10) / 10;
      r.devicePeriodMs = this.periodMs;
    }
    return r;
  }
}
