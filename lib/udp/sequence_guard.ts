/**
 * Plausibility of UDP DATA before it reaches the statistics and the jitter buffer. UDP is not
 * authenticated (PROTOCOL.md §6): one forged datagram with the stream's id and a sequence
 * number or timestamp far from the real ones would otherwise move the receiver's idea of
 * "now" — every later real packet "late" (muted), or a gap of years to conceal. So a DATA
 * frame is compared with the last accepted one:
 *
 * - its sequence number must be within `seqWindow` (signed 32-bit distance, so wrap-around
 *   is fine), and
 * - its timestamp within `slackUs` + |distance| × (the stream's average µs per sequence step,
 *   or 1 s before that is known) of where that average puts it.
 *
 * Anything else is **implausible**: counted and dropped. The guard re-synchronises (a server
 * restarted, a long outage) only on consistent evidence: at least `resyncRun` implausible
 * packets in a row that are plausible with respect to each other, while no plausible packet
 * has arrived for `quietMs` — so a forged run cannot take over a stream that is still flowing.
 * The run's packets are then handed back to be played.
 *
 * @module
 */

/** Options for {@linkcode SequenceGuard}. */
export interface SequenceGuardOptions {
  /** Largest sequence distance from the last accepted packet. @default {1024} */
  seqWindow?: number;
  /** Timestamp tolerance on top of the expected distance (µs). @default {2000000} */
  slackUs?: number;
  /** Consistent implausible packets needed to re-synchronise. @default {4} */
  resyncRun?: number;
  /** Time without a plausible packet before a run may re-synchronise (ms). @default {500} */
  quietMs?: number;
  /** Most run packets held for replay. @default {64} */
  maxHeld?: number;
}

/** What to do with a DATA frame. */
export type GuardVerdict<T> =
  | { kind: "accept" }
  | { kind: "implausible" }
  /** The stream moved: `replay` (the run, oldest first, this packet last) is the new stream. */
  | { kind: "resync"; replay: T[] };

interface Point {
  seq32: number;
  ts: number;
}

/** Default µs per sequence step before the stream's own rate is known. */
const UNKNOWN_SPACING_US = 1_000_000;

/** Decides whether DATA frames belong to the stream (see the module comment). */
export class SequenceGuard<T> {
  readonly #seqWindow: number;
  readonly #slackUs: number;
  readonly #resyncRun: number;
  readonly #quietMs: number;
  readonly #maxHeld: number;
  /** Highest accepted packet. */
  #ref: Point | undefined;
  /** First accepted packet since the last (re)start, and sequence steps from it to #ref. */
  #first: Point | undefined;
  #steps = 0;
  #lastAcceptMs = -Infinity;
  #run: { point: Point; item: T }[] = [];
  /** Packets dropped as implausible. */
  implausible = 0;
  /** Times the guard re-synchronised to a new sequence/timestamp base. */
  resyncs = 0;

  /** Creates a guard that accepts the first packet it sees (unless {@linkcode expect} seeds it). */
  constructor(options: SequenceGuardOptions = {}) {
    this.#seqWindow = options.seqWindow ?? 1024;
    this.#slackUs = options.slackUs ?? 2_000_000;
    this.#resyncRun = options.resyncRun ?? 4;
    this.#quietMs = options.quietMs ?? 500;
    this.#maxHeld = options.maxHeld ?? 64;
  }

  /** Seeds the expectation: the next packet is sequence `seq32` at `timestampUs` (on-demand: 0, 0). */
  expect(seq32: number, timestampUs: number): void {
    this.#ref = { seq32: (seq32 - 1) >>> 0, ts: timestampUs };
  }

  /** Average µs per sequence step of the accepted stream, or undefined until known. */
  get spacingUs(): number | undefined {
    if (!this.#first || !this.#ref || this.#steps <= 0) return undefined;
    const s = (this.#ref.ts - this.#first.ts) / this.#steps;
    return s > 0 ? s : undefined;
  }

  /**
   * Judges a DATA frame. `item` makes the copy held while the frame is part of a possible
   * re-synchronisation run (called only then).
   */
  check(seq32: number, timestampUs: number, nowMs: number, item: () => T): GuardVerdict<T> {
    const point = { seq32, ts: timestampUs };
    if (!this.#ref || this.#plausible(this.#ref, point, this.#seqWindow)) {
      this.#accept(point, nowMs);
      this.#run = [];
      return { kind: "accept" };
    }
    this.implausible++;
    const last = this.#run[this.#run.length - 1];
    if (last && !(this.#plausible(last.point, point, 64) && distance(last.point, point) > 0)) {
      this.#run = [];
    }
    this.#run.push({ point, item: item() });
    if (this.#run.length > this.#maxHeld) this.#run.shift();
    if (this.#run.length >= this.#resyncRun && nowMs - this.#lastAcceptMs >= this.#quietMs) {
      const run = this.#run;
      this.#run = [];
      this.#ref = undefined;
      this.#first = undefined;
      this.#steps = 0;
      for (const r of run) this.#accept(r.point, nowMs);
      this.implausible -= run.length; // they were not implausible after all
      this.resyncs++;
      return { kind: "resync", replay: run.map((r) => r.item) };
    }
    return { kind: "implausible" };
  }

  #accept(point: Point, nowMs: number): void {
    this.#lastAcceptMs = nowMs;
    if (!this.#ref) {
      this.#ref = point;
      this.#first = point;
      this.#steps = 0;
      return;
    }
    const d = distance(this.#ref, point);
    if (d > 0) {
      if (!this.#first) {
        this.#first = point;
        this.#steps = 0;
      } else this.#steps += d;
      this.#ref = point;
    }
  }

  #plausible(from: Point, to: Point, seqWindow: number): boolean {
    const d = distance(from, to);
    if (Math.abs(d) > seqWindow) return false;
    const spacing = this.spacingUs;
    const expected = from.ts + d * (spacing ?? 0);
    const tolerance = this.#slackUs + Math.abs(d) * (spacing ?? UNKNOWN_SPACING_US);
    return Math.abs(to.ts - expected) <= tolerance;
  }
}

/** Signed 32-bit sequence distance from `a` to `b`. */
function distance(a: Point, b: Point): number {
  return (b.seq32 - a.seq32) | 0;
}
