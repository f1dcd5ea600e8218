/**
 * The bytes waiting for one HTTP listener, with a byte cap: a reader slower than the station
 * fills it and is dropped (the queue says so through `onOverflow`), never buffered without
 * bound. One writer loop drains it: each `write` resolves when the kernel has taken the bytes,
 * so what a stalled peer costs is this queue plus one write in flight.
 *
 * @module
 */

import type { HttpConn } from "./http.ts";

/** Why a listener's stream ended. */
export type ListenerEnd = "too_slow" | "closed" | "stopped";

/** Options of {@linkcode ListenerQueue}. */
export interface ListenerQueueOptions {
  /** Most bytes waiting; one more and the listener is dropped. @default {262144} */
  maxBytes?: number;
}

/** A bounded byte queue drained into one connection. */
export class ListenerQueue {
  readonly #conn: HttpConn;
  readonly #maxBytes: number;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #wake: (() => void) | undefined;
  #ended: ListenerEnd | undefined;
  #done!: (end: ListenerEnd) => void;
  /** Resolves with the reason once the listener is finished (its connection is closed then). */
  readonly finished: Promise<ListenerEnd>;
  /** Bytes written to the connection. */
  bytesSent = 0;

  /** Starts the writer loop on `conn`. */
  constructor(conn: HttpConn, options: ListenerQueueOptions = {}) {
    this.#conn = conn;
    this.#maxBytes = options.maxBytes ?? 256 * 1024;
    this.finished = new Promise((resolve) => this.#done = resolve);
    void this.#run();
  }

  /** Bytes waiting now. */
  get queuedBytes(): number {
    return this.#bytes;
  }

  /** True once ended. */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /** Queues `chunk`; past the cap the listener is ended as `too_slow`. */
  push(chunk: Uint8Array): void {
    if (this.#ended) return;
    if (this.#bytes + chunk.length > this.#maxBytes) {
      this.end("too_slow");
      return;
    }
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    this.#wake?.();
  }

  /** Ends the listener and closes its connection (idempotent; the first reason wins). */
  end(reason: ListenerEnd): void {
    if (this.#ended) return;
    this.#ended = reason;
    this.#chunks = [];
    this.#bytes = 0;
    this.#conn.close();
    this.#wake?.();
    this.#done(reason);
  }

  async #run(): Promise<void> {
    // A read that ends means the peer went away (nothing is expected from it).
    void (async () => {
      const sink = new Uint8Array(512);
      try {
        while (!this.#ended && (await this.#conn.read(sink)) !== null) { /* discard */ }
      } catch { /* closed */ }
      this.end("closed");
    })();
    while (!this.#ended) {
      if (this.#chunks.length === 0) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      // Everything waiting goes in one write (one TLS record run, one syscall).
      const parts = this.#chunks;
      this.#chunks = [];
      const chunk = parts.length === 1 ? parts[0]! : concat(parts);
      this.#bytes -= chunk.length;
      try {
        await this.#conn.write(chunk);
        this.bytesSent += chunk.length;
      } catch {
        this.end("closed");
      }
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
