/**
 * A per-IP request budget (token bucket): each source address ({@linkcode sourceKey}: an IPv6
 * /64 is one address) may make `burst` song requests at once and then one every
 * `refillMs`. The table of addresses is bounded (`maxAddresses`; the oldest entry goes).
 *
 * @module
 */

import { sourceKey } from "../net/source_key.ts";

/** Options of {@linkcode RequestBudget}. */
export interface RequestBudgetOptions {
  /** Requests allowed at once. @default {5} */
  burst?: number;
  /** One more request allowed every this many ms. @default {12000} */
  refillMs?: number;
  /** Addresses remembered. @default {10000} */
  maxAddresses?: number;
  /** Clock (ms). @default {performance.now} */
  now?: () => number;
}

/** Token buckets keyed by source address. */
export class RequestBudget {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  /** An empty table. */
  constructor(options: RequestBudgetOptions = {}) {
    this.#burst = options.burst ?? 5;
    this.#refillMs = options.refillMs ?? 12_000;
    this.#max = options.maxAddresses ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Takes one request from `hostname`'s budget. Returns 0 when allowed, otherwise the ms to
   * wait before the next one is.
   */
  take(hostname: string): number {
    const key = sourceKey(hostname);
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (b) {
      this.#buckets.delete(key); // re-inserted last: the Map's order is least recently used
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) / this.#refillMs);
      b.at = now;
    } else {
      b = { tokens: this.#burst, at: now };
      if (this.#buckets.size >= this.#max) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
    }
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) * this.#refillMs);
  }
}
