/**
 * The bytes waiting for one HTTP listener, with a byte cap: a reader slower than the station
 * fills it and is dropped (the queue says so through `onOverflow`), never buffered without
 * bound. One writer loop drains it: each `write` resolves when the kernel has taken the bytes,
 * so what a stalled peer costs is this queue plus one write in flight.
 *
 * A chunk may be a {@linkcode LazyChunk}: bytes made only when the writer gets to them, into
 * a buffer that is reused for every write. The radio's batches are such chunks (the shared
 * Ogg pages with this listener's own granules): a fresh copy per listener per batch cost about
 * half of /stream's CPU per listener at 1000 listeners (bench/web_stream.ts), and a waiting
 * chunk holds only references to the shared pages. Over a connection that takes the bytes
 * synchronously (`writeNow`: OpenSSL's) that buffer is one for all queues; otherwise each
 * queue keeps its own (the write holds it until the kernel has the bytes).
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

/**
 * The buffer lazy chunks are made in before a `writeNow`, shared by every queue: the write
 * has taken the bytes when it returns (a per-listener buffer cost ~10 KiB each at 1000).
 */
let sharedScratch: Uint8Array = new Uint8Array(0);

/** A connection's synchronous write and its drain signal. */
type SyncWriter = Required<Pick<HttpConn, "writeNow" | "whenDrained">>;

/** A bounded byte queue drained into one connection. */
export class ListenerQueue {
  readonly #conn: HttpConn;
  /** `#conn` when it takes bytes synchronously (`writeNow`). */
  readonly #now: SyncWriter | undefined;
  readonly #maxBytes: number;
  #chunks: (Uint8Array | LazyChunk)[] = [];
  #bytes = 0;
  /** Where lazy chunks are made without `writeNow`; reused once its write has completed. */
  #scratch: Uint8Array | undefined;
  /** A write (or the wait for the connection to drain) is in progress: new chunks queue. */
  #writing = false;
  #ended: ListenerEnd | undefined;
  #done!: (end: ListenerEnd) => void;
  /** Resolves with the reason once the listener is finished (its connection is closed then). */
  readonly finished: Promise<ListenerEnd>;
  /** Bytes written to the connection. */
  bytesSent = 0;

  /** Starts reading `conn` (to notice the peer leaving); writes start with the first push. */
  constructor(conn: HttpConn, options: ListenerQueueOptions = {}) {
    this.#conn = conn;
    const { writeNow, whenDrained } = conn;
    this.#now = writeNow && whenDrained
      ? { writeNow: writeNow.bind(conn), whenDrained: whenDrained.bind(conn) }
      : undefined;
    this.#maxBytes = options.maxBytes ?? 256 * 1024;
    this.finished = new Promise((resolve) => this.#done = resolve);
    void this.#watchPeer();
  }

  /** Bytes waiting now. */
  get queuedBytes(): number {
    return this.#bytes;
  }

  /** True once ended. */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /**
   * Queues `chunk`; past the cap the listener is ended as `too_slow`. Over a `writeNow`
   * connection with nothing waiting it is written at once: the usual radio batch costs no
   * promise, and its lazy bytes are made in the shared buffer.
   */
  push(chunk: Uint8Array | LazyChunk): void {
    if (this.#ended) return;
    if (this.#bytes + chunk.length > this.#maxBytes) {
      this.end("too_slow");
      return;
    }
    if (this.#now && !this.#writing) {
      this.#writeNow(this.#now, chunk instanceof Uint8Array ? chunk : this.#join([chunk], true));
      return;
    }
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (!this.#writing) void this.#pump();
  }

  /** Ends the listener and closes its connection (idempotent; the first reason wins). */
  end(reason: ListenerEnd): void {
    if (this.#ended) return;
    this.#ended = reason;
    this.#chunks = [];
    this.#bytes = 0;
    this.#scratch = undefined;
    this.#conn.close();
    this.#done(reason);
  }

  /**
   * `parts` in one buffer: the shared one (`shared`, for `writeNow`) or this queue's own (its
   * last write is done), resized if need be.
   */
  #join(parts: (Uint8Array | LazyChunk)[], shared: boolean): Uint8Array {
    let total = 0;
    for (const p of parts) total += p.length;
    let scratch = shared ? sharedScratch : this.#scratch;
    // Sized for the usual batch with some room (batches differ by a few pages' bytes); a much
    // larger one (a join burst) does not stay allocated.
    if (!scratch || scratch.length < total || scratch.length > 2 * total) {
      scratch = new Uint8Array(Math.ceil(total * 1.25));
      if (shared) sharedScratch = scratch;
      else this.#scratch = scratch;
    }
    const out = scratch.subarray(0, total);
    let at = 0;
    for (const p of parts) {
      if (p instanceof Uint8Array) out.set(p, at);
      else p.writeInto(out.subarray(at, at + p.length));
      at += p.length;
    }
    return out;
  }

  /** A synchronous write; past the connection's mark, later chunks queue until it drains. */
  #writeNow(now: SyncWriter, bytes: Uint8Array): void {
    let more: boolean;
    try {
      more = now.writeNow(bytes);
    } catch {
      return this.end("closed");
    }
    this.bytesSent += bytes.length;
    if (more) return;
    this.#writing = true;
    void now.whenDrained().then(() => {
      this.#writing = false;
      if (!this.#ended && this.#chunks.length > 0) void this.#pump();
    });
  }

  /** Writes what has queued, everything waiting in one write, until the queue is empty. */
  async #pump(): Promise<void> {
    this.#writing = true;
    // Chunks pushed in the same task as the first go in the same write.
    await Promise.resolve();
    try {
      while (!this.#ended && this.#chunks.length > 0) {
        // One write per run of chunks (one TLS record run, one syscall).
        const parts = this.#chunks;
        this.#chunks = [];
        const first = parts[0]!;
        const now = this.#now;
        const chunk = parts.length === 1 && first instanceof Uint8Array
          ? first
          : this.#join(parts, now !== undefined);
        this.#bytes -= chunk.length;
        if (now) {
          if (!now.writeNow(chunk)) await now.whenDrained();
        } else {
          await this.#conn.write(chunk);
        }
        this.bytesSent += chunk.length;
      }
    } catch {
      this.end("closed");
    } finally {
      this.#writing = false;
    }
  }

  /** A read that ends means the peer went away (nothing is expected from it). */
  async #watchPeer(): Promise<void> {
    const sink = new Uint8Array(512);
    try {
      while (!this.#ended && (await this.#conn.read(sink)) !== null) { /* discard */ }
    } catch { /* closed */ }
    this.end("closed");
  }
}
