/**
 * A server TLS connection on OpenSSL (native/soundsock_tls.c) over a `Deno.TcpConn`: Deno
 * keeps the socket (reads, awaited writes, close), the C side does the TLS work and sends
 * ciphertext straight to the socket without a JS round trip when the kernel has room.
 *
 * Per connection this costs an OpenSSL `SSL` with released record buffers, one pending 2 KiB
 * read and a few JS objects (bench/tls_write_cost.ts `--method openssl`), and a radio write is
 * one FFI call: encrypt and send(2). It offers the same surface as
 * {@linkcode ServerTlsConn}, with the same guarantees: the TCP socket can be closed at any
 * moment (handshake or not), reads are bounded by `readLimit` (the socket is not read while
 * that much waits), and what the kernel does not take waits in a bounded queue written with
 * Deno's awaited `write` (backpressure), never dropped or reordered.
 *
 * @module
 */

import { closeQuietly } from "../../net/close.ts";
import { HandshakeError, type ServerConnection } from "../server_conn.ts";
import {
  cString,
  cText,
  FEED_ERROR,
  FEED_HANDSHAKE_DONE,
  FEED_MORE,
  FEED_PEER_CLOSED,
  type NativeTlsContext,
  type NativeTlsSymbols,
} from "./ffi.ts";

/** Options for {@linkcode NativeTlsConn.accept}. */
export interface NativeTlsConnOptions {
  /** The certificate and key. */
  context: NativeTlsContext;
  /** The TCP socket is closed if the handshake has not finished by then. */
  handshakeTimeoutMs: number;
  /** Closes the socket (mid-handshake too); an Error reason becomes the failure's message. */
  signal?: AbortSignal;
  /**
   * Decrypted bytes buffered before the socket stops being read (the peer waits in TCP).
   * @default {16384}
   */
  readLimit?: number;
}

/** Ciphertext read per call during the handshake (a client hello fits). */
const HANDSHAKE_READ_SIZE = 4096;
/**
 * Ciphertext read per call after it: clients send small control frames and requests, and a
 * buffer kept by each of a thousand listeners is memory icecast2 does not spend.
 */
const READ_SIZE = 512;
/** Ciphertext held (queued + being written) above which `tryWrite` says "wait". */
const HIGH_WATER = 64 * 1024;
/** Decrypted bytes taken per `sst_feed` call (shared: the calls are synchronous). */
const plaintext = new Uint8Array(16 * 1024);
const feedFlags = new Int32Array(1);
const noBytes = new Uint8Array(0);
/** The descriptor found last: the next accepted socket's is usually just after it. */
let fdHint = 3;

/** A server-side TLS connection on OpenSSL whose TCP socket can be closed at any time. */
export class NativeTlsConn implements ServerConnection {
  // The batch of tryWrite calls (see there): connections and their `sst_conn *` values, all
  // writing the same buffer, written in one `sst_write_many` call.
  static #batchConns: NativeTlsConn[] = [];
  static #batchHandles = new BigUint64Array(256);
  static #batchResults = new Int32Array(256);
  static #batchBytes: Uint8Array | undefined;
  static #batchLib: NativeTlsSymbols | undefined;
  static #batchScheduled = false;

  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  readonly #lib: NativeTlsSymbols;
  readonly #tcp: Deno.TcpConn;
  readonly #readLimit: number;
  /** The `sst_conn *`; null once freed (after which the descriptor is never touched). */
  #handle: Deno.PointerObject | null;
  /** The handle as a number, for batches. */
  readonly #handleValue: bigint;
  /** A write of this connection waits in the batch. */
  #batched = false;
  /** Ciphertext queued after the last write (what tryWrite's answer is based on). */
  #lastQueued = 0;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #closed = false;
  #secure = false;
  #wake: (() => void) | undefined;
  #resume: (() => void) | undefined;
  /** Bytes taken from the C queue and being written by Deno. */
  #inFlight = 0;
  #flushing: Promise<void> | undefined;
  #drainWaiters: (() => void)[] = [];
  #pumpDone: Promise<void> = Promise.resolve();
  /** Handshake outcome, for {@linkcode accept}. */
  #onSecure: (() => void) | undefined;
  #onFail: ((message: string) => void) | undefined;

  private constructor(
    lib: NativeTlsSymbols,
    tcp: Deno.TcpConn,
    handle: Deno.PointerObject,
    readLimit: number,
  ) {
    this.#lib = lib;
    this.#tcp = tcp;
    this.#handle = handle;
    this.#handleValue = BigInt(Deno.UnsafePointer.value(handle));
    this.remoteAddr = tcp.remoteAddr;
    this.#readLimit = readLimit;
  }

  /**
   * Runs the server handshake on `tcp`. Undefined (nothing done to `tcp`) when its descriptor
   * cannot be found, so the caller can use node:tls instead; otherwise the promise resolves
   * once the handshake is complete, and on failure, timeout or abort the TCP socket is closed
   * and it rejects with {@linkcode HandshakeError}.
   */
  static accept(
    tcp: Deno.TcpConn,
    options: NativeTlsConnOptions,
  ): Promise<NativeTlsConn> | undefined {
    const { lib } = options.context;
    const fd = lib.sst_find_socket(
      tcp.localAddr.port,
      cText(tcp.remoteAddr.hostname),
      tcp.remoteAddr.port,
      fdHint,
    );
    if (fd < 0) return undefined;
    fdHint = fd;
    const handle = lib.sst_conn_new(options.context.pointer, fd);
    if (handle === null) return undefined;
    const conn = new NativeTlsConn(lib, tcp, handle, options.readLimit ?? 16384);
    return conn.#handshake(options);
  }

  #handshake(options: NativeTlsConnOptions): Promise<NativeTlsConn> {
    const timeout = AbortSignal.timeout(options.handshakeTimeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    return new Promise((resolve, reject) => {
      const onAbort = () =>
        this.#onFail?.(
          timeout.aborted
            ? `no TLS handshake within ${options.handshakeTimeoutMs} ms`
            : signal.reason instanceof Error
            ? signal.reason.message
            : "the server is stopping",
        );
      const settle = () => {
        this.#onSecure = this.#onFail = undefined;
        signal.removeEventListener("abort", onAbort);
      };
      this.#onSecure = () => {
        settle();
        resolve(this);
      };
      this.#onFail = (message) => {
        settle();
        this.#hardClose();
        reject(new HandshakeError(message));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.#pumpDone = this.#pump();
    });
  }

  /** Ciphertext not yet taken by the kernel. */
  get bufferedBytes(): number {
    if (this.#batched) NativeTlsConn.#flushBatch();
    return this.#handle === null ? 0 : this.#lib.sst_queued(this.#handle) + this.#inFlight;
  }

  /** Negotiated protocol, e.g. `TLSv1.3`. */
  get protocol(): string | null {
    return this.#handle === null ? null : cString(this.#lib.sst_conn_protocol(this.#handle));
  }

  /**
   * Whether the records this connection sends are sealed by the library's own TLS 1.3 record
   * layer (native/soundsock_tls.c) rather than by OpenSSL's SSL_write (TLS 1.2).
   */
  get ownRecords(): boolean {
    return this.#handle !== null && this.#lib.sst_conn_own_records(this.#handle) === 1;
  }

  /** The first `n` decrypted bytes, not consumed (fewer if the stream ends or is closed). */
  async peek(n: number): Promise<Uint8Array> {
    while (this.#buffered < n && !this.#ended && !this.#error) await this.#waitForData();
    const out = new Uint8Array(Math.min(n, this.#buffered));
    let at = 0;
    for (const c of this.#chunks) {
      if (at >= out.length) break;
      const take = Math.min(c.length, out.length - at);
      out.set(c.subarray(0, take), at);
      at += take;
    }
    return out;
  }

  /** Reads decrypted bytes into `p`; null at the end of the stream (or once closed). */
  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await this.#waitForData();
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length, p.length - n);
      p.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered <= this.#readLimit / 2) this.#wakeReader();
    return n;
  }

  /** Encrypts and writes all of `p`; resolves (to `p.length`) when the kernel has taken it. */
  async write(p: Uint8Array): Promise<number> {
    this.writeNow(p);
    while (this.#flushing) await this.#flushing;
    if (this.#error && this.#handle === null) throw this.#error;
    return p.length;
  }

  /**
   * Encrypts all of `p` and sends what the kernel takes; the rest waits in this connection's
   * queue. False once that queue is above its mark (then wait for {@linkcode whenDrained}).
   * Write errors end the connection (the reader sees them). `p` must not change until the
   * current task ends: the write is made then, together with every other connection's
   * `tryWrite` of the same buffer in this task — a radio round, one FFI call for all
   * listeners (per connection nothing happens in JS between the station's event and send(2)).
   * @throws {Deno.errors.BadResource} when the connection is closed
   */
  tryWrite(p: Uint8Array): boolean {
    this.#openHandle();
    NativeTlsConn.#addToBatch(this, p);
    return this.#lastQueued + this.#inFlight < HIGH_WATER;
  }

  /**
   * Encrypts all of `p` before returning (so `p` may be reused at once: one buffer can serve
   * every listener in turn) and sends what the kernel takes; the rest waits in this
   * connection's queue. False once that queue is above its mark (then wait for
   * {@linkcode whenDrained}). Write errors end the connection (the reader sees them).
   * @throws {Deno.errors.BadResource} when the connection is closed
   */
  writeNow(p: Uint8Array): boolean {
    const handle = this.#openHandle();
    // Writes batched earlier go first.
    if (this.#batched) NativeTlsConn.#flushBatch();
    this.#afterWrite(this.#lib.sst_write(handle, p, p.length));
    return this.#lastQueued + this.#inFlight < HIGH_WATER;
  }

  /**
   * The `sst_conn *` of a connection that can be written.
   * @throws {Deno.errors.BadResource} when the connection is closed
   */
  #openHandle(): Deno.PointerObject {
    const handle = this.#handle;
    if (this.#closed || !this.#secure || handle === null || this.#error) {
      throw new Deno.errors.BadResource("connection closed");
    }
    return handle;
  }

  static #addToBatch(conn: NativeTlsConn, p: Uint8Array): void {
    const batch = NativeTlsConn.#batchConns;
    // One buffer per batch: the previous one is written first (so each connection's writes
    // keep their order).
    if (batch.length > 0 && NativeTlsConn.#batchBytes !== p) NativeTlsConn.#flushBatch();
    const n = NativeTlsConn.#batchConns.length;
    if (n === NativeTlsConn.#batchHandles.length) {
      const handles = new BigUint64Array(n * 2);
      handles.set(NativeTlsConn.#batchHandles);
      NativeTlsConn.#batchHandles = handles;
      NativeTlsConn.#batchResults = new Int32Array(n * 2);
    }
    NativeTlsConn.#batchHandles[n] = conn.#handleValue;
    NativeTlsConn.#batchConns.push(conn);
    NativeTlsConn.#batchBytes = p;
    NativeTlsConn.#batchLib = conn.#lib;
    conn.#batched = true;
    if (!NativeTlsConn.#batchScheduled) {
      NativeTlsConn.#batchScheduled = true;
      queueMicrotask(() => {
        NativeTlsConn.#batchScheduled = false;
        NativeTlsConn.#flushBatch();
      });
    }
  }

  /** Makes the batched writes (before anything else touches a batched connection). */
  static #flushBatch(): void {
    const conns = NativeTlsConn.#batchConns;
    const bytes = NativeTlsConn.#batchBytes;
    const lib = NativeTlsConn.#batchLib;
    if (conns.length === 0 || !bytes || !lib) return;
    NativeTlsConn.#batchConns = [];
    NativeTlsConn.#batchBytes = undefined;
    const results = NativeTlsConn.#batchResults;
    lib.sst_write_many(NativeTlsConn.#batchHandles, conns.length, bytes, bytes.length, results);
    for (let i = 0; i < conns.length; i++) {
      const conn = conns[i]!;
      conn.#batched = false;
      conn.#afterWrite(results[i]!);
    }
  }

  #afterWrite(queued: number): void {
    if (queued < 0) {
      const handle = this.#handle;
      return this.#fail(new Error(handle ? cString(this.#lib.sst_conn_error(handle)) : "closed"));
    }
    this.#lastQueued = queued;
    if (queued > 0) this.#startFlush();
  }

  /** Resolves once the queue is below its mark, or the connection closed. */
  whenDrained(): Promise<void> {
    if (this.bufferedBytes < HIGH_WATER || this.#handle === null) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /**
   * Closes the connection. After a completed handshake the peer is sent TLS close_notify (after
   * everything queued) and given up to `graceMs` to close its side; the TCP socket is closed
   * then at the latest (at once when the handshake never finished). Idempotent.
   */
  close(graceMs = 1000): void {
    if (this.#closed) return;
    if (this.#batched) NativeTlsConn.#flushBatch();
    this.#closed = true;
    this.#end();
    this.#onFail?.("the server is stopping");
    const handle = this.#handle;
    if (!this.#secure || handle === null || this.#error) return this.#hardClose();
    if (this.#lib.sst_shutdown(handle) > 0) this.#startFlush();
    const hard = setTimeout(() => this.#hardClose(), graceMs);
    void (async () => {
      while (this.#flushing) await this.#flushing;
      // FIN after close_notify; then wait for the peer's end, so that closing never resets
      // a connection whose last bytes the peer has not read yet.
      if (this.#handle !== null) await this.#tcp.closeWrite().catch(() => {});
      await this.#pumpDone;
      clearTimeout(hard);
      this.#hardClose();
    })();
  }

  /** Reads ciphertext until the end, feeding it to OpenSSL. */
  async #pump(): Promise<void> {
    let buf = new Uint8Array(HANDSHAKE_READ_SIZE);
    try {
      for (;;) {
        if (this.#secure && buf.length !== READ_SIZE) buf = new Uint8Array(READ_SIZE);
        while (this.#buffered >= this.#readLimit && !this.#closed) {
          await new Promise<void>((resolve) => (this.#resume = resolve));
        }
        const n = await this.#tcp.read(buf);
        if (this.#handle === null) return;
        if (n === null) {
          this.#onFail?.("the peer closed the connection during the handshake");
          this.#end();
          return;
        }
        // After close() only the peer's end is awaited; what it sends is dropped.
        if (!this.#closed) this.#feed(buf.subarray(0, n));
        if (this.#error) return;
      }
    } catch (error) {
      if (this.#handle === null || this.#closed) return;
      this.#fail(error as Error);
    }
  }

  #feed(input: Uint8Array): void {
    const lib = this.#lib;
    let data = input;
    for (;;) {
      const handle = this.#handle;
      if (handle === null) return;
      const n = lib.sst_feed(handle, data, data.length, plaintext, plaintext.length, feedFlags);
      data = noBytes;
      const flags = feedFlags[0]!;
      if (lib.sst_queued(handle) > 0) this.#startFlush();
      if (flags & FEED_ERROR) {
        const message = cString(lib.sst_conn_error(handle));
        if (this.#onFail) return this.#onFail(message);
        return this.#fail(new Error(message));
      }
      if (flags & FEED_HANDSHAKE_DONE) {
        this.#secure = true;
        this.#onSecure?.();
      }
      if (n > 0) {
        this.#chunks.push(plaintext.slice(0, n));
        this.#buffered += n;
        this.#notify();
      }
      if (flags & FEED_PEER_CLOSED) return this.#end();
      if (!(flags & FEED_MORE)) return;
    }
  }

  /** Writes the C queue's ciphertext through Deno until it is empty. */
  #startFlush(): void {
    if (this.#flushing) return;
    this.#flushing = (async () => {
      // Sized to what waits (a few KiB usually): an idle 64 KiB per listener that lagged once
      // would stay allocated until V8 collects it.
      let buf: Uint8Array | undefined;
      try {
        for (;;) {
          const handle = this.#handle;
          if (handle === null) return;
          const queued = this.#lib.sst_queued(handle);
          if (queued === 0) return;
          if (!buf || buf.length < Math.min(queued, HIGH_WATER)) {
            buf = new Uint8Array(Math.min(queued, HIGH_WATER));
          }
          const n = this.#lib.sst_take(handle, buf, buf.length);
          if (n === 0) return;
          this.#inFlight = n;
          for (let at = 0; at < n;) at += await this.#tcp.write(buf.subarray(at, n));
          this.#inFlight = 0;
          this.#lastQueued = this.bufferedBytes;
          if (this.#lastQueued < HIGH_WATER) this.#releaseDrainWaiters();
        }
      } catch (error) {
        this.#inFlight = 0;
        if (!this.#closed) this.#fail(error as Error);
        else this.#hardClose();
      } finally {
        this.#flushing = undefined;
        this.#releaseDrainWaiters();
      }
    })();
  }

  /** A fatal error: readers see it, the socket is closed. */
  #fail(error: Error): void {
    this.#error ??= error;
    this.#notify();
    this.#hardClose();
  }

  #end(): void {
    this.#ended = true;
    this.#notify();
    this.#wakeReader();
  }

  /** Frees the OpenSSL side (it stops using the descriptor) and then closes the socket. */
  #hardClose(): void {
    // A batched write holds this handle: made before the handle is freed.
    if (this.#batched) NativeTlsConn.#flushBatch();
    this.#closed = true;
    this.#ended = true;
    const handle = this.#handle;
    if (handle !== null) {
      this.#handle = null;
      this.#lib.sst_conn_free(handle);
      closeQuietly(this.#tcp);
    }
    this.#notify();
    this.#wakeReader();
    this.#releaseDrainWaiters();
  }

  #waitForData(): Promise<void> {
    return new Promise<void>((resolve) => (this.#wake = resolve));
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #wakeReader(): void {
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  #releaseDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }
}
