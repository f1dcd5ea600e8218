/**
 * The bytes waiting for one HTTP listener, with a byte cap: a reader slower than the station
 * fills it and is dropped (the queue says so through `onOverflow`), never buffered without
 * bound. One writer loop drains it: each `write` resolves when the kernel has taken the bytes,
 * so what a stalled peer costs is this queue plus one write in flight.
 *
 * A chunk may be a {@linkcode LazyChunk}: bytes made only when the writer gets to them, into
 * one buffer the queue keeps and reuses for every write. The radio's batches are such chunks
 * (the shared Ogg pages with this listener's own granules): a fresh copy per listener per
 * batch cost about half of /stream's CPU per listener at 1000 listeners (bench/web_stream.ts),
 * and a waiting chunk holds only references to the shared pages.
 *
 * @module
 */

import type { HttpConn } from "./http.ts";

/** Why a listener's stream ended. */
export type ListenerEnd = "too_slow" | "closed" | "stopped";

/** Bytes made when they are written, into a buffer the queue reuses. */
export interface LazyChunk {
  /** How many bytes {@linkcode writeInto} makes. */
  readonly length: number;
  /** Writes the bytes into `out` (exactly `length` long). */
  writeInto(out: Uint8Array): void;
}

/** Options of {@linkcode ListenerQueue}. */
export interface ListenerQueueOptions {
  /** Most bytes waiting; one more and the listener is dropped. @default {262144} */
  maxBytes?: number;
}

/** A bounded byte queue drained into one connection. */
export class ListenerQueue {
  readonly #conn: HttpConn;
  readonly #maxBytes: number;
  #chunks: (Uint8Array | LazyChunk)[] = [];
  #bytes = 0;
  /** Where lazy chunks are made; reused once the write of its bytes has completed. */
  #scratch: Uint8Array | undefined;
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
  push(chunk: Uint8Array | LazyChunk): void {
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
    this.#scratch = undefined;
    this.#conn.close();
    this.#wake?.();
    this.#done(reason);
  }

  /** `parts` in one buffer: the scratch buffer (its last write is done), resized if need be. */
  #join(parts: (Uint8Array | LazyChunk)[]): Uint8Array {
    let total = 0;
    for (const p of parts) total += p.length;
    // Sized for the usual batch with some room (batches differ by a few pages' bytes); a much
    // larger one (a join burst) does not stay allocated.
    if (!this.#scratch || this.#scratch.length < total || this.#scratch.length > 2 * total) {
      this.#scratch = new Uint8Array(Math.ceil(total * 1.25));
    }
    const out = this.#scratch.subarray(0, total);
    let at = 0;
    for (const p of parts) {
      if (p instanceof Uint8Array) out.set(p, at);
      else p.writeInto(out.subarray(at, at + p.length));
      at += p.length;
    }
    return out;
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
      const first = parts[0]!;
      const chunk = parts.length === 1 && first instanceof Uint8Array ? first : this.#join(parts);
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
