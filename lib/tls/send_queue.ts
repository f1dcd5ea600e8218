/**
 * The single writer of one connection: every frame the server sends (answers, radio packets,
 * download blocks) goes through one queue bounded in bytes, so frames never interleave and a
 * peer that stops reading holds at most `maxBytes` of server memory. Radio packets are
 * *offered* (refused when the queue is full: the listener is too slow); downloads *push* and
 * wait for room (ordinary backpressure). A writer with `tryWrite` (lib/tls/server_conn.ts)
 * takes frames up to one slice at once into its own buffer, bounded by its high-water mark.
 *
 * @module
 */

/** Something bytes can be written to: `Deno.Conn`, `Deno.TlsConn`, `ServerTlsConn`. */
export interface ByteWriter {
  /** Writes some of `p`; resolves to the count written. */
  write(p: Uint8Array): Promise<number>;
  /**
   * Optional: hands all of `p` (kept unchanged by the caller) to the writer's own bounded
   * buffer without waiting; false once that buffer is above its mark, and then the queue
   * waits for {@linkcode whenDrained} before handing on more.
   * @throws when the connection is gone
   */
  tryWrite?(p: Uint8Array): boolean;
  /** Resolves once the writer's buffer is below its mark again (or the connection is gone). */
  whenDrained?(): Promise<void>;
}

/** Options for {@linkcode SendQueue}. */
export interface SendQueueOptions {
  /**
   * Most bytes queued and not yet written.
   * @default {1048576}
   */
  maxBytes?: number;
  /**
   * Largest single write; a stalled peer is noticed within one slice of progress, and the
   * TLS layer holds at most one slice of ciphertext beyond the bound.
   * @default {65536}
   */
  writeSlice?: number;
  /** Called once when a write fails (peer gone); the queue is closed. */
  onError?: (error: Error) => void;
}

/** A bounded, ordered frame writer for one connection. */
export class SendQueue {
  readonly #writer: ByteWriter;
  readonly #maxBytes: number;
  readonly #slice: number;
  readonly #onError: (error: Error) => void;
  /** The writer has `tryWrite` and `whenDrained`: frames are handed on synchronously. */
  readonly #handsOn: boolean;
  #chunks: Uint8Array[] = [];
  #head = 0;
  #queued = 0;
  #pumping = false;
  #closed = false;
  /** Set by abandon(): nothing more is accepted. */
  #final = false;
  #roomWaiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];
  /** performance.now() of the last completed write, or when the current write started. */
  lastProgress = performance.now();
  /** Bytes written to the peer. */
  bytesWritten = 0;

  /** @param writer the connection. */
  constructor(writer: ByteWriter, options: SendQueueOptions = {}) {
    this.#writer = writer;
    this.#handsOn = writer.tryWrite !== undefined && writer.whenDrained !== undefined;
    this.#maxBytes = options.maxBytes ?? 1024 * 1024;
    this.#slice = options.writeSlice ?? 64 * 1024;
    this.#onError = options.onError ?? (() => {});
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** The bound in bytes. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** Whether a write is in progress (the peer owes us reading). */
  get busy(): boolean {
    return this.#pumping;
  }

  /** Whether the queue was closed (peer gone or {@linkcode close} called). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues `bytes` if they fit under the bound; returns false (queuing nothing) if not.
   * A frame larger than the bound fits only into an empty queue. `force` skips the bound
   * (the radio's join burst, which is bounded by the station).
   */
  offer(bytes: Uint8Array, force = false): boolean {
    if (this.#closed || this.#final) return false;
    if (!force && this.#queued > 0 && this.#queued + bytes.length > this.#maxBytes) return false;
    this.#enqueue(bytes);
    return true;
  }

  /**
   * Queues `bytes`, waiting for room first. Resolves false if the queue closes meanwhile.
   * @throws the signal's reason when it aborts while waiting
   */
  async push(bytes: Uint8Array, signal?: AbortSignal): Promise<boolean> {
    if (!(await this.waitForRoom(bytes.length, signal))) return false;
    this.#enqueue(bytes);
    return true;
  }

  /**
   * Resolves true once `bytes` more would fit under the bound (or the queue is empty), false
   * if the queue closes first. A producer calls it *before* making a block, so the block it
   * is preparing counts against the same bound as what is queued.
   * @throws the signal's reason when it aborts while waiting
   */
  async waitForRoom(bytes: number, signal?: AbortSignal): Promise<boolean> {
    while (
      !this.#closed && !this.#final && this.#queued > 0 && this.#queued + bytes > this.#maxBytes
    ) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#roomWaiters.push(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
    signal?.throwIfAborted();
    return !this.#closed && !this.#final;
  }

  /** Resolves once everything queued is written (or the queue closed). */
  drained(): Promise<void> {
    if (this.#queued === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Drops every queued frame not yet started (the one being written finishes, so the stream
   * stays aligned on frames), queues `last` regardless of the bound, and refuses anything
   * after it. Used to tell a too-slow peer why it is dropped.
   */
  abandon(last: Uint8Array): void {
    if (this.#closed) return;
    const keep = this.#pumping ? this.#chunks.slice(this.#head, this.#head + 1) : [];
    this.#chunks = [...keep, last];
    this.#head = 0;
    this.#queued = keep.reduce((n, c) => n + c.length, 0) + last.length;
    this.#final = true;
    if (!this.#pumping && !this.#handOn()) void this.#pump();
  }

  /** Drops what is queued and refuses more. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#head = 0;
    this.#queued = 0;
    this.#wake();
  }

  #enqueue(bytes: Uint8Array): void {
    // The usual radio frame: nothing waits, so the writer takes it at once and it never takes
    // a slot in the array (with nothing queued there is nobody to wake either).
    if (
      this.#handsOn && !this.#pumping && this.#head === this.#chunks.length &&
      bytes.length <= this.#slice
    ) {
      this.#give(bytes);
      return;
    }
    this.#chunks.push(bytes);
    this.#queued += bytes.length;
    if (!this.#pumping && !this.#handOn()) void this.#pump();
  }

  /**
   * The writer's fast path ({@linkcode ByteWriter.tryWrite}), synchronously: a radio frame
   * costs no promise or callback of its own (~10 % of tls-server's CPU per radio listener at
   * N=1000, bench/RESULTS-tls-fanout.md). Returns true when all that was queued has been
   * handed on (or the writer failed and the queue closed), false when the async pump must go
   * on (a chunk larger than one slice).
   */
  #handOn(): boolean {
    if (!this.#handsOn) return false;
    while (this.#head < this.#chunks.length) {
      const chunk = this.#chunks[this.#head]!;
      if (chunk.length > this.#slice) return false;
      const given = this.#give(chunk);
      if (given === "failed") return true;
      this.#chunks[this.#head++] = EMPTY;
      this.#queued -= chunk.length;
      this.#wake();
      if (given === "wait") return true;
    }
    // All handed on. The array (its written slots emptied) is kept for the next frames and
    // replaced only now and then: a new one per frame would be garbage of its own.
    if (this.#head > 64) {
      this.#chunks = [];
      this.#head = 0;
    }
    return true;
  }

  /**
   * Hands `chunk` to the writer's `tryWrite`: "more" when it takes more at once, "wait" when it
   * is above its mark (the wait for its drain has started), "failed" when the write threw (the
   * queue is closed and `onError` told).
   */
  #give(chunk: Uint8Array): "more" | "wait" | "failed" {
    let more: boolean;
    try {
      more = this.#writer.tryWrite!(chunk);
    } catch (error) {
      this.close();
      this.#onError(error as Error);
      return "failed";
    }
    this.bytesWritten += chunk.length;
    // No timestamp per frame (performance.now() is ~0.13 µs, ~1 % of a radio write): the
    // watchdog reads lastProgress only while busy, and #awaitDrain sets it when that starts.
    if (more) return "more";
    void this.#awaitDrain(this.#writer.whenDrained!());
    return "wait";
  }

  /** Busy (a watchdog sees a stall) until the writer has drained, then hands on more. */
  async #awaitDrain(drained: Promise<void>): Promise<void> {
    this.#pumping = true;
    this.lastProgress = performance.now();
    try {
      await drained;
    } finally {
      this.#pumping = false;
    }
    if (this.#closed) return;
    this.lastProgress = performance.now();
    if (this.#head < this.#chunks.length && !this.#handOn()) void this.#pump();
  }

  #wake(): void {
    // Checked first: splice() makes an array even when there is nobody to wake.
    if (this.#roomWaiters.length > 0) { for (const w of this.#roomWaiters.splice(0)) w(); }
    if ((this.#queued === 0 || this.#closed) && this.#idleWaiters.length > 0) {
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    this.lastProgress = performance.now();
    try {
      while (!this.#closed && this.#head < this.#chunks.length) {
        const chunk = this.#chunks[this.#head]!;
        let at = 0;
        while (at < chunk.length) {
          const n = await this.#writer.write(
            chunk.subarray(at, Math.min(chunk.length, at + this.#slice)),
          );
          if (this.#closed) return;
          at += n;
          this.bytesWritten += n;
          this.lastProgress = performance.now();
        }
        this.#chunks[this.#head++] = EMPTY;
        this.#queued -= chunk.length;
        // Compact now and then so the array does not grow without bound.
        if (this.#head > 1024) {
          this.#chunks = this.#chunks.slice(this.#head);
          this.#head = 0;
        }
        this.#wake();
      }
      this.#chunks = [];
      this.#head = 0;
    } catch (error) {
      this.close();
      this.#onError(error as Error);
    } finally {
      this.#pumping = false;
    }
  }
}

const EMPTY = new Uint8Array(0);
