/**
 * Reconnect delays: the first retry after `initialMs`, doubling up to `maxMs`; a connection
 * that lasted at least `stableMs` resets the delay to `initialMs`.
 *
 * @module
 */

/** Options of {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First delay. @default {1000} */
  initialMs?: number;
  /** Largest delay. @default {30000} */
  maxMs?: number;
  /** A connection at least this long resets the delay. @default {10000} */
  stableMs?: number;
}

/** Exponential reconnect backoff with reset; see the module doc. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #stable: number;
  #next: number;

  /** A backoff at its first delay. */
  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 1000;
    this.#max = options.maxMs ?? 30_000;
    this.#stable = options.stableMs ?? 10_000;
    this.#next = this.#initial;
  }

  /** Call when a connection ends (or fails to open) after `connectedMs` (0: never connected). */
  ended(connectedMs: number): void {
    if (connectedMs >= this.#stable) this.#next = this.#initial;
  }

  /** The delay to wait now; the following one doubles (up to the cap). */
  delay(): number {
    const d = this.#next;
    this.#next = Math.min(this.#next * 2, this.#max);
    return d;
  }
}
