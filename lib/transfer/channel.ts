/**
 * A byte channel with exact reads, over either end of the TLS connection: a Deno `TlsConn`
 * (the receiver) or a `node:tls` socket (the sender, which must accept an unknown certificate
 * and read its fingerprint — Deno's own client cannot). Reads go straight into the caller's
 * buffer where they can (4 MiB chunks land in place); writes resolve when the transport took
 * the bytes, so a caller's buffer can be reused afterwards.
 *
 * @module
 */

import type tls from "node:tls";
import { TransferError } from "./errors.ts";
import { FrameError, type FrameTypeNumber, HEADER_SIZE, maxPayload } from "./frames.ts";

/** The peer closed the connection in the middle of a frame (or the connection failed). */
export class ConnectionClosed extends TransferError {
  override name = "ConnectionClosed";
  constructor(message = "the peer closed the connection") {
    super(message);
  }
}

/** A frame header read by {@linkcode Channel.readHeader}. */
export interface FrameHeader {
  type: FrameTypeNumber;
  length: number;
}

/** One end of a connection. */
export interface Channel {
  /** Fills `target` completely. @throws {ConnectionClosed} at the end of the stream. */
  readInto(target: Uint8Array): Promise<void>;
  /** Writes all of `bytes`; resolves when the transport took them. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the connection (idempotent). */
  close(): void;
  /** Total bytes written so far. */
  readonly bytesWritten: number;
}

/** Reads a frame header and checks its length against the type's limit. */
export async function readHeader(channel: Channel): Promise<FrameHeader> {
  const header = new Uint8Array(HEADER_SIZE);
  await channel.readInto(header);
  const type = header[0]!;
  const length = new DataView(header.buffer).getUint32(1);
  const max = maxPayload(type);
  if (length > max) {
    throw new FrameError(`Cannot decode frame: length ${length} exceeds ${max}`);
  }
  return { type: type as FrameTypeNumber, length };
}

/** Reads a whole control frame. */
export async function readFrame(
  channel: Channel,
): Promise<{ type: FrameTypeNumber; payload: Uint8Array }> {
  const { type, length } = await readHeader(channel);
  const payload = new Uint8Array(length);
  await channel.readInto(payload);
  return { type, payload };
}

/** A {@linkcode Channel} over a Deno connection. */
export class DenoChannel implements Channel {
  readonly #conn: Deno.Conn;
  #buf = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;
  #closed = false;
  bytesWritten = 0;

  #lastActivity = performance.now();
  #reading = false;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #idleMs: number | undefined;

  /**
   * Wraps `conn`. With `idleTimeoutMs`, a read that waits longer than that for any byte
   * closes the connection ({@linkcode ConnectionClosed}: "no data for N s").
   */
  constructor(conn: Deno.Conn, options: { idleTimeoutMs?: number } = {}) {
    this.#conn = conn;
    const idleMs = options.idleTimeoutMs;
    if (idleMs !== undefined) {
      this.#idleMs = idleMs;
      this.#idleTimer = setInterval(() => {
        if (this.#reading && performance.now() - this.#lastActivity > idleMs) this.#close(true);
      }, Math.min(1000, idleMs / 4));
      Deno.unrefTimer(this.#idleTimer);
    }
  }

  async readInto(target: Uint8Array): Promise<void> {
    let at = 0;
    const buffered = this.#end - this.#start;
    if (buffered > 0) {
      const n = Math.min(buffered, target.length);
      target.set(this.#buf.subarray(this.#start, this.#start + n));
      this.#start += n;
      at = n;
    }
    while (at < target.length) {
      const want = target.length - at;
      // Small reads go through our buffer (one read may bring several frames); large ones
      // land in the caller's buffer directly.
      if (want < this.#buf.length / 4) {
        const n = await this.#read(this.#buf);
        this.#start = 0;
        this.#end = n;
        const take = Math.min(n, want);
        target.set(this.#buf.subarray(0, take), at);
        this.#start = take;
        at += take;
      } else {
        at += await this.#read(target.subarray(at));
      }
    }
  }

  #idled = false;

  async #read(into: Uint8Array): Promise<number> {
    if (this.#closed) throw this.#closedError();
    let n: number | null;
    this.#reading = true;
    this.#lastActivity = performance.now();
    try {
      n = await this.#conn.read(into);
    } catch (cause) {
      if (this.#idled) throw this.#closedError();
      throw new ConnectionClosed(`the connection failed: ${(cause as Error).message}`);
    } finally {
      this.#reading = false;
    }
    if (n === null) throw this.#closedError();
    return n;
  }

  #closedError(): ConnectionClosed {
    return this.#idled
      ? new ConnectionClosed(`no data from the peer for ${(this.#idleMs ?? 0) / 1000} s`)
      : new ConnectionClosed();
  }

  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
    this.bytesWritten += bytes.length;
  }

  close(): void {
    this.#close(false);
  }

  #close(idle: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#idled = idle;
    clearInterval(this.#idleTimer);
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Bytes per `socket.write` of {@linkcode NodeChannel} (see there). */
const WRITE_SLICE = 256 * 1024;

/** A {@linkcode Channel} over a `node:tls` socket, with a bounded read queue. */
export class NodeChannel implements Channel {
  readonly #socket: tls.TLSSocket;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended: Error | undefined;
  #wake: (() => void) | undefined;
  #paused = false;
  readonly #limit: number;
  readonly #writes = new Set<(error: Error) => void>();
  bytesWritten = 0;

  /** Wraps a connected socket; reading pauses it once `limit` bytes wait. */
  constructor(socket: tls.TLSSocket, limit = 8 * 1024 * 1024) {
    this.#socket = socket;
    this.#limit = limit;
    socket.on("timeout", () => {
      const ms = socket.timeout ?? 0;
      this.#ended ??= new ConnectionClosed(
        `no progress from the peer for ${ms / 1000} s (nothing read, nothing taken)`,
      );
      this.#fail();
      socket.destroy();
    });
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued > this.#limit && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      this.#notify();
    });
    const end = (error?: Error) => {
      this.#ended ??= new ConnectionClosed(
        error ? `the connection failed: ${error.message}` : undefined,
      );
      this.#fail();
    };
    socket.on("end", () => end());
    socket.on("close", () => end());
    socket.on("error", (error: Error) => end(error));
  }

  /**
   * With `ms` > 0, a connection on which no byte moves either way for `ms` (a peer that
   * stopped reading as well as one that stopped sending) is closed: pending and later reads
   * and writes fail with {@linkcode ConnectionClosed}. 0 turns it off.
   */
  setIdleTimeout(ms: number): void {
    this.#socket.setTimeout(ms);
  }

  #fail() {
    for (const reject of this.#writes) reject(this.#ended!);
    this.#writes.clear();
    this.#notify();
  }

  #notify() {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async readInto(target: Uint8Array): Promise<void> {
    let at = 0;
    while (at < target.length) {
      const head = this.#queue[0];
      if (!head) {
        if (this.#ended) throw this.#ended;
        await new Promise<void>((resolve) => this.#wake = resolve);
        continue;
      }
      const n = Math.min(head.length, target.length - at);
      target.set(head.subarray(0, n), at);
      at += n;
      this.#queued -= n;
      if (n === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(n);
    }
    if (this.#paused && this.#queued < this.#limit / 2) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      // A write the peer never takes is failed when the connection ends (idle timeout).
      const fail = (error: Error) => reject(error);
      this.#writes.add(fail);
      // Handed over in slices: Deno's node:tls copies each write into a buffer of its size,
      // and a 4 MiB one is above glibc's mmap and trim thresholds, so every chunk faulted in
      // fresh pages (measured: the sender's CPU per GiB 3.0–3.4 s whole, 1.9–2.0 s sliced).
      // The callbacks come in order: the last one says the socket took all of it.
      let at = 0;
      for (; bytes.length - at > WRITE_SLICE; at += WRITE_SLICE) {
        this.#socket.write(bytes.subarray(at, at + WRITE_SLICE));
      }
      this.#socket.write(bytes.subarray(at), (error) => {
        this.#writes.delete(fail);
        if (error) reject(new ConnectionClosed(`the connection failed: ${error.message}`));
        else {
          this.bytesWritten += bytes.length;
          resolve();
        }
      });
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
