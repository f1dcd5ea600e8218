/**
 * A listener's view of a live broadcast (STREAM_INFO `captureEpochUs`, docs/PROTOCOL.md §5.4):
 * end-to-end latency per packet — from the capture of its first sample (sender's wall clock)
 * to its hand-off to the output (this host's wall clock) — as median / p95 / p99, and the
 * clock drift between sender and listener, estimated from how that latency trends over
 * capture time (least squares; jitter averages out, a steady trend is drift).
 *
 * Memory is bounded: percentiles come from the last {@linkcode LATENCY_WINDOW} packets.
 *
 * @module
 */

/** Now on the wall clock in µs since the Unix epoch (sub-millisecond, monotonic in a run). */
export function wallClockUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Packets whose latency is kept for the percentiles (10 min of 10 ms packets). */
export const LATENCY_WINDOW = 60_000;

/** Seconds of capture time left out of the drift fit at the start. */
export const DRIFT_SETTLE_S = 2;
/** Seconds of capture time the drift fit needs before it reports anything but 0. */
export const DRIFT_MIN_SPAN_S = 10;

/** What {@linkcode LatencyMeter.report} returns. */
export interface LiveLatencyReport {
  /** Packets measured. */
  packets: number;
  /** Latency capture → output hand-off, ms. */
  medianMs: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * Sender clock relative to the listener's, in ppm (positive: the sender is faster, latency
   * would grow): the latency's trend, or the drift correction's measure when one runs.
   */
  driftPpm: number;
  /** Latency to when it is heard: hand-off + the device's queue then (a device output only). */
  device?: { medianMs: number; p95Ms: number; p99Ms: number };
  /** The jitter buffer at the end (ms; `--buffer auto` chose it). */
  bufferMs?: number;
  /** Drift correction (a device output): single frames dropped and inserted. */
  framesDropped?: number;
  framesInserted?: number;
  /** Frames skipped at the start: stale audio that came while the output opened. */
  framesSkipped?: number;
  /** Drift correction: the smoothed level (jitter buffer + device queue) at the end, ms. */
  levelMs?: number;
  /** Drift correction: the level it keeps (latched after settling), ms. */
  targetMs?: number;
  /** The device period the output was opened with (ms). */
  devicePeriodMs?: number;
}

/** Collects per-packet latencies; see the module doc. */
export class LatencyMeter {
  readonly #window: Float64Array;
  #count = 0;
  #max = -Infinity;
  // Running sums for the drift fit (x: capture time s since the first packet; y: latency ms).
  #x0: number | undefined;
  #n = 0;
  #sx = 0;
  #sy = 0;
  #sxx = 0;
  #sxy = 0;

  /** @param window packets kept for the percentiles */
  constructor(window = LATENCY_WINDOW) {
    this.#window = new Float64Array(window);
  }

  /** Packets measured so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Records one packet handed to the output at `nowUs` (wall clock, µs since the Unix epoch),
   * whose first sample was captured at `captureUs` (sender's wall clock).
   */
  record(captureUs: number, nowUs: number): void {
    const ms = (nowUs - captureUs) / 1000;
    this.#window[this.#count % this.#window.length] = ms;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
    this.#x0 ??= captureUs;
    const x = (captureUs - this.#x0) / 1e6;
    // The start (the jitter buffer filling, then catching up) is not drift.
    if (x < DRIFT_SETTLE_S) return;
    this.#n++;
    this.#sx += x;
    this.#sy += ms;
    this.#sxx += x * x;
    this.#sxy += x * ms;
  }

  /** The statistics so far (zeros before any packet). */
  report(): LiveLatencyReport {
    const n = Math.min(this.#count, this.#window.length);
    if (n === 0) return { packets: 0, medianMs: 0, p95Ms: 0, p99Ms: 0, maxMs: 0, driftPpm: 0 };
    const sorted = this.#window.slice(0, n).sort();
    const at = (q: number) => round(sorted[Math.min(n - 1, Math.floor(q * n))]!);
    const den = this.#n * this.#sxx - this.#sx * this.#sx;
    // Variance of x ≥ span²/12: needs DRIFT_MIN_SPAN_S of measurements after the settling.
    const enough = this.#n > 1 && this.#sxx / this.#n - (this.#sx / this.#n) ** 2 >=
        DRIFT_MIN_SPAN_S ** 2 / 12;
    // Slope in ms of latency per s of capture time: × 1000 is ppm.
    const slope = enough && den > 0 ? (this.#n * this.#sxy - this.#sx * this.#sy) / den : 0;
    return {
      packets: this.#count,
      medianMs: at(0.5),
      p95Ms: at(0.95),
      p99Ms: at(0.99),
      maxMs: round(this.#max),
      driftPpm: Math.round(slope * 1000 * 10) / 10,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
