/**
 * Network impairment you can dial in (`--sim-loss/--sim-reorder/--sim-dup/--sim-delay`), so a
 * classroom sees loss, reordering and jitter without root access to netem. Reproducible: the
 * same `--sim-seed` makes the same decisions for the same packet sequence. Applied to sends
 * on the server and to receptions on the client; every decision is counted ("injected").
 *
 * @module
 */

/** A reordered packet is held back until this many later packets (1..MAX_HOLD_PACKETS) passed. */
export const MAX_HOLD_PACKETS = 3;
/**
 * A held packet is released anyway when no packet passed for this many measured packet
 * intervals (the last packet of a stream must not wait for one that never comes).
 */
export const HOLD_IDLE_INTERVALS = 2;
/**
 * Bounds of that idle release, in milliseconds. The floor is above the sender's flow-control
 * stall (250 ms), so a pause inside a stream never releases a packet early: which packets get
 * reordered then depends on the seed alone, not on timing.
 */
export const HOLD_IDLE_MIN_MS = 500;
/** @see HOLD_IDLE_MIN_MS */
export const HOLD_IDLE_MAX_MS = 2000;
/** Idle release before any interval was measured, in milliseconds. */
export const HOLD_IDLE_DEFAULT_MS = 500;

/** Impairment settings. Percentages are 0–100. */
export interface ImpairmentOptions {
  /** Drop this percentage of packets. */
  lossPct: number;
  /**
   * Hold back this percentage of packets until 1–3 later packets (drawn from the seed) have
   * passed, whatever the stream's packet interval; so the reordering shows at any bitrate.
   */
  reorderPct: number;
  /** Deliver this percentage of packets twice. */
  dupPct: number;
  /** Fixed extra delay in milliseconds. */
  delayMs: number;
  /** Random extra delay, uniformly 0..jitterMs on top of delayMs. */
  jitterMs: number;
  /** Seed of the pseudo-random generator. */
  seed: number;
}

/** What an impairment has done. */
export interface ImpairmentCounts {
  seen: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  delayed: number;
}

/**
 * Parses `MS` or `MS±JITTER` (also `MS+-JITTER`, `MS~JITTER`) into delay and jitter.
 *
 * @throws {TypeError} with a user-facing message for anything else.
 */
export function parseDelay(text: string): { delayMs: number; jitterMs: number } {
  const m = /^(\d+(?:\.\d+)?)(?:(?:±|\+-|~)(\d+(?:\.\d+)?))?$/.exec(text.trim());
  if (!m) throw new TypeError(`"${text}" is not MS or MS±JITTER (for example 40±10)`);
  return { delayMs: Number(m[1]), jitterMs: Number(m[2] ?? 0) };
}

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG — reproducible from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Applies impairment to a flow of packets. */
export class Impairment {
  readonly options: ImpairmentOptions;
  readonly counts: ImpairmentCounts = {
    seen: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    delayed: 0,
  };
  readonly #random: () => number;
  /** A packet held back for reordering: its delivery, and how many packets must pass first. */
  #held: { release: () => void; after: number } | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  /** When the last packet was applied (performance.now()), and the smoothed interval. */
  #lastApplyMs: number | undefined;
  #intervalMs: number | undefined;

  /** Creates an impairment; all-zero options make it a pass-through. */
  constructor(options: ImpairmentOptions) {
    for (const k of ["lossPct", "reorderPct", "dupPct"] as const) {
      if (!(options[k] >= 0 && options[k] <= 100)) {
        throw new RangeError(`${k} must be between 0 and 100, got ${options[k]}`);
      }
    }
    this.options = options;
    this.#random = seededRandom(options.seed);
  }

  /** Whether any impairment is configured. */
  get active(): boolean {
    const o = this.options;
    return o.lossPct > 0 || o.reorderPct > 0 || o.dupPct > 0 || o.delayMs > 0 || o.jitterMs > 0;
  }

  /**
   * Passes one packet through: `deliver` is called zero, one or two times, now or later.
   * Decisions use a fixed number of random draws per packet, so a seed replays exactly.
   */
  apply(deliver: () => void): void {
    const o = this.options;
    this.counts.seen++;
    this.#measure(performance.now());
    const [rLoss, rDup, rReorder, rJitter, rHold] = [
      this.#random(),
      this.#random(),
      this.#random(),
      this.#random(),
      this.#random(),
    ];
    if (rLoss * 100 < o.lossPct) {
      this.counts.dropped++;
      return;
    }
    const copies = rDup * 100 < o.dupPct ? 2 : 1;
    if (copies === 2) this.counts.duplicated++;
    const send = () => {
      for (let i = 0; i < copies; i++) this.#later(deliver, o.delayMs + rJitter * o.jitterMs);
    };
    if (this.#held) {
      // The held packet goes after the packets that pass it: that is the reordering.
      send();
      if (--this.#held.after <= 0) this.flush();
      else this.#armIdle();
      return;
    }
    if (rReorder * 100 < o.reorderPct) {
      this.counts.reordered++;
      this.#held = { release: send, after: 1 + Math.floor(rHold * MAX_HOLD_PACKETS) };
      this.#armIdle();
      return;
    }
    send();
  }

  /** The smoothed interval between packets, in ms (undefined before two packets). */
  get intervalMs(): number | undefined {
    return this.#intervalMs;
  }

  /** Delivers a held-back packet (call at the end of a flow so nothing is lost by reordering). */
  flush(): void {
    const held = this.#held;
    this.#held = undefined;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    held?.release();
  }

  /** Updates the smoothed packet interval (EWMA, 1/8 like RFC 6298's SRTT). */
  #measure(now: number): void {
    if (this.#lastApplyMs !== undefined) {
      const gap = now - this.#lastApplyMs;
      this.#intervalMs = this.#intervalMs === undefined
        ? gap
        : this.#intervalMs + (gap - this.#intervalMs) / 8;
    }
    this.#lastApplyMs = now;
  }

  /** (Re)starts the release of the held packet for when the flow goes quiet. */
  #armIdle(): void {
    clearTimeout(this.#idleTimer);
    const ms = this.#intervalMs === undefined ? HOLD_IDLE_DEFAULT_MS : Math.min(
      HOLD_IDLE_MAX_MS,
      Math.max(HOLD_IDLE_MIN_MS, HOLD_IDLE_INTERVALS * this.#intervalMs),
    );
    this.#idleTimer = setTimeout(() => this.flush(), ms);
  }

  #later(fn: () => void, ms: number): void {
    if (ms <= 0) return fn();
    this.counts.delayed++;
    const id = setTimeout(() => {
      this.#timers.delete(id);
      fn();
    }, ms);
    this.#timers.add(id);
  }

  /** Cancels pending delayed deliveries. */
  close(): void {
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#held = undefined;
  }
}
