/**
 * Listener-side playout control for a live broadcast (docs/PROTOCOL.md §5.4), as pure logic
 * with no clock of its own, so it is tested by simulation:
 *
 * - {@linkcode DriftController}: keeps the playout delay at a target although the sender's
 *   capture clock and the listener's output clock differ (roc-toolkit measured 0.0055 % between
 *   two sound cards: ~200 ms of queue growth an hour). The buffer level, smoothed over about a
 *   second, drives a PI controller whose output is a rate correction capped at ±0.05 %
 *   (Snapcast's bound), applied by dropping or inserting single sample frames
 *   ({@linkcode adjustBlock}). The controller's integral term is the measured drift.
 * - {@linkcode AutoBuffer}: `--buffer auto`, Jamulus-style: the arrival jitter of every packet is
 *   tried against a set of buffer sizes at once, and the target is the smallest size whose
 *   simulated underrun rate stays under a bound (0.05 %), capped so it cannot grow without limit.
 *
 * @module
 */

/** Largest rate correction: ±0.05 % (one frame in 2000). */
export const MAX_CORRECTION = 0.0005;

/** Seconds over which the correction is averaged into the drift estimate. */
export const DRIFT_AVERAGE_S = 300;

/** Options of {@linkcode DriftController}. */
export interface DriftControllerOptions {
  /**
   * Target playout delay (buffer level) in ms; undefined: the level the stream settled at, its
   * average over the second after {@linkcode settleS} (a device's own period may not allow an
   * arbitrary level, and keeping the delay constant is the point).
   */
  targetMs?: number;
  /** With no targetMs: seconds before the level is latched as the target. @default {2} */
  settleS?: number;
  /** Output sample rate. @default {48000} */
  sampleRate?: number;
  /** Rate correction cap (fraction). @default {MAX_CORRECTION} */
  maxCorrection?: number;
  /** Level smoothing time constant (s). @default {1} */
  smoothingS?: number;
  /** Proportional gain: correction per second of level error. @default {0.05} */
  kp?: number;
  /** Integral gain (per s²). @default {0.0025} */
  ki?: number;
  /**
   * While settling, a level above this (ms) is stale audio — the output opened late and the
   * packets that came meanwhile were all handed to it at once: whole blocks are skipped until
   * the level is under it, so the delay latched is the live one, not the backlog.
   * @default {Infinity}
   */
  maxStartMs?: number;
  /**
   * Once the target is latched, a level more than this above it (ms) is a stall's backlog — the
   * output device did not take audio for a while (its thread was starved; PulseAudio played
   * silence) and the delay jumped: whole blocks are skipped back down to the target instead of
   * working it off at the ±0.05 % of a clock drift (which takes 2 s per ms). Counted in
   * {@linkcode DriftController.skipped}.
   * @default {Infinity}
   */
  maxExcessMs?: number;
}

/**
 * The device period (ms) a live stream's output is opened with, from its `--buffer`: half of
 * it, 10 ms at least and 100 ms at most. PulseAudio's stream target (tlength) is one period,
 * so this is what a stalled audio thread can survive — a larger buffer buys that too — and
 * the part of the heard latency the device adds (the default 40 ms buffer: 20 ms).
 */
export function livePeriodMs(bufferMs: number): number {
  return Math.max(10, Math.min(100, Math.round(bufferMs / 2)));
}

/**
 * How long a live stream's packet after a hole waits for the missing ones (ms), from its
 * `--buffer`. Live packets go to the device as they arrive and the delay is held in the
 * device's queue (about `bufferMs`, {@linkcode DriftController}), which the device drains a
 * period ({@linkcode livePeriodMs}) at a time: waiting `bufferMs` (an on-demand stream's
 * rule) would run it dry at every loss. Half of what is left above one period is waited (the
 * default 40 ms: 10 ms of reordering), then the gap is concealed at once.
 */
export function liveGapWaitMs(bufferMs: number): number {
  return Math.max(0, (bufferMs - livePeriodMs(bufferMs)) / 2);
}

/**
 * Turns buffer levels into single-frame drops and inserts; see the module doc. Call
 * {@linkcode update} once per output block.
 */
export class DriftController {
  /** The target level in frames (NaN until latched, without targetMs). */
  targetFrames: number;
  readonly #settleS: number;
  readonly #rate: number;
  readonly #max: number;
  readonly #tau: number;
  readonly #kp: number;
  readonly #ki: number;
  readonly #maxStartFrames: number;
  readonly #maxExcessFrames: number;
  #smoothed: number | undefined;
  #integral = 0;
  #carry = 0;
  /** The correction averaged over {@linkcode DRIFT_AVERAGE_S}: the drift estimate. */
  #average = 0;
  #elapsedS = 0;
  #settleSum = 0;
  #settleTime = 0;
  /** Frames dropped (level too high: the sender's clock is faster). */
  dropped = 0;
  /** Frames inserted (level too low: the sender's clock is slower). */
  inserted = 0;
  /** Frames skipped while settling (stale audio above maxStartMs). */
  skipped = 0;

  /** Creates a controller for one stream. */
  constructor(options: DriftControllerOptions) {
    this.#rate = options.sampleRate ?? 48_000;
    this.targetFrames = options.targetMs === undefined ? NaN : options.targetMs * this.#rate / 1000;
    this.#settleS = options.settleS ?? 2;
    this.#max = options.maxCorrection ?? MAX_CORRECTION;
    this.#tau = options.smoothingS ?? 1;
    this.#kp = options.kp ?? 0.05;
    this.#ki = options.ki ?? 0.0025;
    this.#maxStartFrames = (options.maxStartMs ?? Infinity) * this.#rate / 1000;
    this.#maxExcessFrames = (options.maxExcessMs ?? Infinity) * this.#rate / 1000;
  }

  /** The smoothed buffer level in ms (undefined before the first update). */
  get levelMs(): number | undefined {
    return this.#smoothed === undefined ? undefined : this.#smoothed * 1000 / this.#rate;
  }

  /** The target level in ms (undefined until latched). */
  get targetMs(): number | undefined {
    return Number.isNaN(this.targetFrames) ? undefined : this.targetFrames * 1000 / this.#rate;
  }

  /**
   * Sender clock relative to ours in ppm, as measured by the sustained correction averaged
   * over {@linkcode DRIFT_AVERAGE_S} (positive: the sender is faster and frames are dropped).
   * The packet grid slides past the output's blocks as the clocks drift, which wobbles the
   * level (and the correction) with a period of `frame / drift` (100 s for 10 ms at 100 ppm):
   * the long average removes that wobble.
   */
  get driftPpm(): number {
    return this.#average * 1e6;
  }

  /**
   * One output block: `levelFrames` is the audio queued ahead of the output (jitter buffer +
   * device) before taking `blockFrames`. Returns how many extra input frames to consume for
   * this block: +1 (drop one frame), −1 (insert one), or 0 — or, while settling above
   * maxStartMs, `blockFrames` (skip the whole block; {@linkcode adjustBlock} returns nothing).
   */
  update(levelFrames: number, blockFrames: number): number {
    if (Number.isNaN(this.targetFrames) && levelFrames - blockFrames > this.#maxStartFrames) {
      // Stale audio from a late start: not played, and not part of the level followed.
      this.skipped += blockFrames;
      return blockFrames;
    }
    if (levelFrames - blockFrames > this.targetFrames + this.#maxExcessFrames) {
      // A stall's backlog: back to the target (the smoothed level follows the skip).
      this.skipped += blockFrames;
      this.#smoothed = Math.min(this.#smoothed ?? Infinity, levelFrames - blockFrames);
      return blockFrames;
    }
    const dt = blockFrames / this.#rate;
    const a = Math.min(1, dt / this.#tau);
    this.#smoothed = this.#smoothed === undefined
      ? levelFrames
      : this.#smoothed + a * (levelFrames - this.#smoothed);
    if (Number.isNaN(this.targetFrames)) {
      // Settling: follow the level; latch its plain average over the smoothing time after
      // settleS (the smoothed level would still carry the start's transient).
      this.#elapsedS += dt;
      if (this.#elapsedS > this.#settleS) {
        this.#settleSum += levelFrames * dt;
        this.#settleTime += dt;
      }
      if (this.#elapsedS >= this.#settleS + this.#tau && this.#settleTime > 0) {
        this.targetFrames = this.#settleSum / this.#settleTime;
        this.#smoothed = this.targetFrames;
        this.#elapsedS = 0;
      }
      return 0;
    }
    const error = (this.#smoothed - this.targetFrames) / this.#rate; // seconds
    // Integrate with anti-windup: the integral alone never asks for more than the cap.
    const limit = this.#max / this.#ki;
    this.#integral = Math.max(-limit, Math.min(limit, this.#integral + error * dt));
    const correction = Math.max(
      -this.#max,
      Math.min(this.#max, this.#kp * error + this.#ki * this.#integral),
    );
    this.#elapsedS += dt;
    // An average over the time so far until DRIFT_AVERAGE_S have passed, then exponential.
    this.#average += (correction - this.#average) * dt / Math.min(this.#elapsedS, DRIFT_AVERAGE_S);
    this.#carry += correction * blockFrames;
    if (this.#carry >= 1) {
      this.#carry -= 1;
      this.dropped++;
      return 1;
    }
    if (this.#carry <= -1) {
      this.#carry += 1;
      this.inserted++;
      return -1;
    }
    return 0;
  }
}

/**
 * Applies a {@linkcode DriftController.update} result to a block of `frames + delta`
 * interleaved input frames, returning `frames` output frames (none when the whole block is
 * skipped, `delta` ≥ its length): a dropped frame is merged with
 * its neighbour (their mean), an inserted one is the mean of two neighbours — at the middle
 * of the block, so the step is one sample's worth and inaudible.
 */
export function adjustBlock(pcm: Int16Array, channels: number, delta: number): Int16Array {
  const frames = pcm.length / channels;
  if (delta >= frames) return pcm.subarray(0, 0);
  if (delta === 0 || frames < 2) return pcm;
  const mid = Math.floor(frames / 2);
  if (delta > 0) {
    const out = new Int16Array(pcm.length - channels);
    out.set(pcm.subarray(0, (mid - 1) * channels));
    for (let c = 0; c < channels; c++) {
      out[(mid - 1) * channels + c] = Math.round(
        (pcm[(mid - 1) * channels + c]! + pcm[mid * channels + c]!) / 2,
      );
    }
    out.set(pcm.subarray((mid + 1) * channels), mid * channels);
    return out;
  }
  const out = new Int16Array(pcm.length + channels);
  out.set(pcm.subarray(0, mid * channels));
  for (let c = 0; c < channels; c++) {
    out[mid * channels + c] = Math.round(
      (pcm[(mid - 1) * channels + c]! + pcm[mid * channels + c]!) / 2,
    );
  }
  out.set(pcm.subarray(mid * channels), (mid + 1) * channels);
  return out;
}

/**
 * The level of a device queue without its period's sawtooth. A device takes audio a period
 * at a time, so its queue read when packets arrive is a sawtooth read at a phase that slides
 * with the very clock drift being measured: over a minute the bias can cancel the drift or
 * double it. The device's read position is a staircase whose corners lie on a line (its
 * clock). Each time a reading sees the counter step, the corner happened since the reading
 * before: the middle of that interval is an unbiased estimate of its time, and the line is the
 * average (over about {@linkcode DEVICE_LINE_S}) of `consumed − rate × t` at those corners,
 * which follows a device clock a little off ours. Readings locked to the sender's packets
 * alone would always see the steps at the same sliding phase: {@linkcode observe} is also
 * called from a timer on our clock every few ms, so steps are timed to a few ms.
 */
export class DeviceLevel {
  readonly #rate: number;
  #offset: number | undefined;
  #corners = 0;
  #lastS: number | undefined;
  #lastConsumed: number | undefined;
  #lastCornerS: number | undefined;

  /** @param sampleRate the device stream's rate */
  constructor(sampleRate: number) {
    this.#rate = sampleRate;
  }

  /** One reading of the device's consumed-frames counter at `nowS` (monotonic seconds). */
  observe(consumedFrames: number, nowS: number): void {
    const lastS = this.#lastS;
    const stepped = this.#lastConsumed !== undefined && consumedFrames !== this.#lastConsumed;
    this.#lastS = nowS;
    this.#lastConsumed = consumedFrames;
    // A step seen across a long pause (a stalled event loop) cannot be timed: skipped.
    if (!stepped || lastS === undefined || nowS - lastS > 0.008 || nowS < lastS) return;
    const v = consumedFrames - this.#rate * (lastS + nowS) / 2;
    this.#corners++;
    const sinceS = nowS - (this.#lastCornerS ?? nowS);
    this.#lastCornerS = nowS;
    const a = Math.max(1 / this.#corners, Math.min(1, sinceS / DEVICE_LINE_S));
    this.#offset = this.#offset === undefined ? v : this.#offset + a * (v - this.#offset);
  }

  /**
   * `queuedFrames` and `consumedFrames` read from the device at `nowS` (seconds, the clock of
   * {@linkcode observe}); returns the queue as if the device read continuously (up to a
   * constant: what it takes at a step). The raw queue until a step was timed.
   */
  levelFrames(queuedFrames: number, consumedFrames: number, nowS: number): number {
    this.observe(consumedFrames, nowS);
    if (this.#offset === undefined) return queuedFrames;
    // Read continuously, the device would have taken this much of what the counter shows.
    return queuedFrames - (this.#offset + this.#rate * nowS - consumedFrames);
  }
}

/**
 * The first write of a live stream to a device, as one block of at least `minFrames` (two
 * device periods). Written packet by packet, the device — running since it opened, taking a
 * period per callback — can ask for a whole period when only the first packet is in its ring:
 * an underrun (and a gap heard) at the very start, seen on a loaded host.
 */
export class StartBatch {
  readonly #min: number;
  readonly #channels: number;
  #held: Int16Array[] = [];
  #frames = 0;
  #done = false;

  /** @param minFrames frames to hold before the first write; @param channels interleaved */
  constructor(minFrames: number, channels: number) {
    this.#min = minFrames;
    this.#channels = channels;
  }

  /** The block to write now (everything held so far, at once), or undefined to hold it. */
  add(pcm: Int16Array): Int16Array | undefined {
    if (this.#done) return pcm;
    this.#held.push(pcm.slice());
    this.#frames += pcm.length / this.#channels;
    if (this.#frames < this.#min) return undefined;
    this.#done = true;
    const out = new Int16Array(this.#frames * this.#channels);
    let o = 0;
    for (const h of this.#held) {
      out.set(h, o);
      o += h.length;
    }
    this.#held = [];
    return out;
  }
}

/** Seconds of device-counter steps {@linkcode DeviceLevel} averages its line over. */
export const DEVICE_LINE_S = 5;

/** Options of {@linkcode AutoBuffer}. */
export interface AutoBufferOptions {
  /** Candidate sizes in ms, ascending. @default {[5, 10, 15, 20, 30, 40, 60, 80, 120, 200]} */
  sizesMs?: readonly number[];
  /** Highest acceptable underrun rate. @default {0.0005} */
  maxUnderrunRate?: number;
  /** Packets the statistics cover (older ones fade out). @default {20000} */
  windowPackets?: number;
  /** Packets before the first choice (until then the largest size). @default {200} */
  warmupPackets?: number;
}

/**
 * `--buffer auto`: picks the smallest buffer whose simulated underrun rate is under the bound
 * (see the module doc); never more than the largest candidate.
 */
export class AutoBuffer {
  readonly sizesMs: readonly number[];
  readonly #bound: number;
  readonly #decay: number;
  readonly #warmup: number;
  readonly #late: Float64Array;
  #total = 0;
  #packets = 0;
  /** Smallest transit seen (µs), slowly forgotten so a route change is followed. */
  #minTransitUs: number | undefined;

  /** Creates the chooser. */
  constructor(options: AutoBufferOptions = {}) {
    this.sizesMs = options.sizesMs ?? [5, 10, 15, 20, 30, 40, 60, 80, 120, 200];
    this.#bound = options.maxUnderrunRate ?? 0.0005;
    this.#decay = 1 - 1 / (options.windowPackets ?? 20_000);
    this.#warmup = options.warmupPackets ?? 200;
    this.#late = new Float64Array(this.sizesMs.length);
  }

  /** One packet captured at `captureUs` (sender clock) arrived at `arrivalUs` (ours). */
  onPacket(captureUs: number, arrivalUs: number): void {
    const transit = arrivalUs - captureUs;
    // Forget 1 µs per packet, so the floor follows slow changes.
    this.#minTransitUs = this.#minTransitUs === undefined
      ? transit
      : Math.min(transit, this.#minTransitUs + 1);
    const excessMs = (transit - this.#minTransitUs) / 1000;
    this.#total = this.#total * this.#decay + 1;
    for (let i = 0; i < this.sizesMs.length; i++) {
      this.#late[i] = this.#late[i]! * this.#decay + (excessMs > this.sizesMs[i]! ? 1 : 0);
    }
    this.#packets++;
  }

  /** True once enough packets were seen for a choice ({@linkcode AutoBufferOptions.warmupPackets}). */
  get ready(): boolean {
    return this.#packets >= this.#warmup;
  }

  /** The buffer to use now (ms). */
  get targetMs(): number {
    const last = this.sizesMs[this.sizesMs.length - 1]!;
    if (this.#packets < this.#warmup) return last;
    for (let i = 0; i < this.sizesMs.length; i++) {
      if (this.#late[i]! / this.#total < this.#bound) return this.sizesMs[i]!;
    }
    return last;
  }
}
