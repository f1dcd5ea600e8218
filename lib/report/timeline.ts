/**
 * A bounded record of what a receiver saw, in time order, for the session report
 * (`udp-client --report FILE.html`): every DATA arrival (sequence, media timestamp, arrival time,
 * duplicate or reordered), packets that came after their playout point, concealed gaps, and the
 * jitter buffer's level. Each kind keeps at most `maxEvents` entries; past that it stops
 * recording and says so (`truncated`), so a long session costs a fixed amount of memory.
 *
 * @module
 */

/** One DATA arrival. */
export interface ArrivalEvent {
  /** Milliseconds since the record started. */
  t: number;
  /** Extended sequence number. */
  seq: number;
  /** Media timestamp (µs). */
  tsUs: number;
  kind: "ok" | "duplicate" | "reordered";
}

/** A concealed gap: packets `from`..`to` (exclusive) were missing when their turn came. */
export interface GapEvent {
  t: number;
  from: number;
  to: number;
}

/** The jitter buffer's level after a packet was played. */
export interface LevelEvent {
  t: number;
  /** Audio waiting (ms of media time). */
  bufferedMs: number;
  /** Underruns so far. */
  underruns: number;
}

/** Options of {@linkcode SessionTimeline}. */
export interface SessionTimelineOptions {
  /** Most entries of each kind. @default {200000} */
  maxEvents?: number;
  /** Clock (ms). @default {performance.now} */
  now?: () => number;
}

/** The record; see the module doc. */
export class SessionTimeline {
  readonly #max: number;
  readonly #now: () => number;
  readonly #start: number;
  readonly arrivals: ArrivalEvent[] = [];
  readonly late: { t: number; seq: number }[] = [];
  readonly gaps: GapEvent[] = [];
  readonly levels: LevelEvent[] = [];
  /** Kinds that reached `maxEvents` (later entries were not kept). */
  readonly truncated = new Set<string>();
  #lastLevelT = -Infinity;

  /** Starts recording now. */
  constructor(options: SessionTimelineOptions = {}) {
    this.#max = options.maxEvents ?? 200_000;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** Milliseconds since the start for a `performance.now()` value. */
  at(ms: number): number {
    return ms - this.#start;
  }

  #push<T>(list: T[], kind: string, entry: T): void {
    if (list.length >= this.#max) {
      this.truncated.add(kind);
      return;
    }
    list.push(entry);
  }

  /** A DATA packet arrived (`arrivalMs` from performance.now()). */
  arrival(seq: number, tsUs: number, arrivalMs: number, kind: ArrivalEvent["kind"]): void {
    this.#push(this.arrivals, "arrivals", { t: this.at(arrivalMs), seq, tsUs, kind });
  }

  /** Packet `seq` arrived after its playout point (not played). */
  latePacket(seq: number, arrivalMs: number): void {
    this.#push(this.late, "late", { t: this.at(arrivalMs), seq });
  }

  /** A gap was concealed. */
  gap(from: number, to: number): void {
    this.#push(this.gaps, "gaps", { t: this.at(this.#now()), from, to });
  }

  /** The buffer level after a packet was played (kept at most every 20 ms). */
  level(bufferedMs: number, underruns: number): void {
    const t = this.at(this.#now());
    const last = this.levels[this.levels.length - 1];
    if (t - this.#lastLevelT < 20 && last && last.underruns === underruns) return;
    this.#lastLevelT = t;
    this.#push(this.levels, "levels", { t, bufferedMs, underruns });
  }

  /**
   * Sequence numbers in `[base, base + expected)` that never arrived, in order (the report's
   * lost packets: their count is the statistics' `lost` whenever every arrival was recorded).
   */
  lostSequences(base: number, expected: number): number[] {
    const seen = new Set<number>();
    for (const a of this.arrivals) if (a.kind !== "duplicate") seen.add(a.seq);
    const lost: number[] = [];
    for (let s = base; s < base + expected; s++) if (!seen.has(s)) lost.push(s);
    return lost;
  }
}
