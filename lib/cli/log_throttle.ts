/**
 * Bounding what a flood writes to the logs: the first events of each kind are logged in full,
 * then only every Nth, each with the running count, so an attacker cannot fill the disk or
 * the terminal while the counters stay exact.
 *
 * @module
 */

/** Decides, per event name, whether this occurrence is logged. */
export class LogThrottle {
  readonly #counts = new Map<string, number>();
  readonly #first: number;
  readonly #every: number;

  /** Logs the first `first` of each event, then every `every`th. */
  constructor(first = 100, every = 1000) {
    this.#first = first;
    this.#every = every;
  }

  /** Counts one `event`; returns its running count if it should be logged, else 0. */
  admit(event: string): number {
    const n = (this.#counts.get(event) ?? 0) + 1;
    this.#counts.set(event, n);
    return n <= this.#first || n % this.#every === 0 ? n : 0;
  }
}
