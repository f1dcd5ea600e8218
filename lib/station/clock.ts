/**
 * The station clock: the number of 48 kHz sample frames the station has encoded. Every
 * timestamp and every due time is computed from that count (never by adding up per-packet
 * durations), so a station that runs for days neither drifts from the wall clock nor from the
 * audio it delivered.
 *
 * - media time of sample `n`: `floor(n × 10^6 / 48000)` µs = `floor(n × 125 / 6)` (exact for
 *   any count below 2^53 / 125, i.e. 47 000 years);
 * - wall time sample `n` is due: `origin + n / 48` ms.
 *
 * A timer that fires late simply finds several packets due and sends them at once (catch-up);
 * only a stall longer than `maxLateMs` (a suspended laptop, a debugger) moves the origin, so the
 * station does not flood its listeners with minutes of audio.
 *
 * @module
 */

/** The station's sample rate (Opus's native rate). */
export const STATION_RATE = 48_000;
/** The station's channel count. */
export const STATION_CHANNELS = 2;

/** Media time in µs of sample frame `samples` at 48 kHz (floor; exact integer arithmetic). */
export function samplesToUs(samples: number): number {
  return Math.floor(samples * 125 / 6);
}

/** Options of {@linkcode StationClock}. */
export interface StationClockOptions {
  /**
   * A packet later than this (ms behind its due time) moves the origin instead of being
   * caught up with a burst.
   * @default {2000}
   */
  maxLateMs?: number;
}

/** Wall-clock pacing against the sample count. */
export class StationClock {
  /** performance.now()-style time (ms) at which sample 0 was (or would have been) due. */
  #originMs: number;
  readonly #maxLateMs: number;
  /** How often a stall moved the origin. */
  resets = 0;

  /** Starts the clock: sample 0 is due at `nowMs`. */
  constructor(nowMs: number, options: StationClockOptions = {}) {
    this.#originMs = nowMs;
    this.#maxLateMs = options.maxLateMs ?? 2000;
  }

  /** Wall time (ms) at which sample frame `samples` is due. */
  dueAtMs(samples: number): number {
    return this.#originMs + samples / (STATION_RATE / 1000);
  }

  /**
   * How long to wait (ms, ≥ 0) before sending a packet that starts at sample `samples`, at
   * wall time `nowMs`. 0 means "send now" — including when it is late (catch-up); a packet
   * more than `maxLateMs` late moves the origin so that it is due now.
   */
  waitMs(samples: number, nowMs: number): number {
    const due = this.dueAtMs(samples);
    if (nowMs - due > this.#maxLateMs) {
      this.#originMs = nowMs - samples / (STATION_RATE / 1000);
      this.resets++;
      return 0;
    }
    return Math.max(0, due - nowMs);
  }

  /** Sample frames due by `nowMs` (how far the live edge is). */
  samplesDue(nowMs: number): number {
    return Math.max(0, Math.floor((nowMs - this.#originMs) * (STATION_RATE / 1000)));
  }
}
