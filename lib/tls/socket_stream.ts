/**
 * A `node:tls` socket seen as the small `read`/`write` surface the frame code uses, on the
 * client (lib/tls/connect.ts) and the server (lib/tls/server_conn.ts) alike. Reads are served
 * from a queue of received chunks; while more than `readLimit` bytes wait the socket is
 * paused (the peer waits in TCP) and it resumes below half of that. A write resolves once the
 * socket has handed the bytes on.
 *
 * @module
 */

import type tls from "node:tls";

/** Options for {@linkcode TlsSocketStream}. */
export interface TlsSocketStreamOptions {
  /** Decrypted bytes queued before the socket is paused. */
  readLimit: number;
  /**
   * Copy each buffer before writing: for callers that reuse theirs (node may keep the buffer
   * after `write` returns). Servers writing immutable frames leave it off.
   * @default {false}
   */
  copyWrites?: boolean;
}

/** Bounded reads and acknowledged writes over a connected `tls.TLSSocket`. */
export class TlsSocketStream {
  readonly #socket: tls.TLSSocket;
  readonly #readLimit: number;
  readonly #copyWrites: boolean;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /** Starts taking the socket's data. */
  constructor(socket: tls.TLSSocket, options: TlsSocketStreamOptions) {
    this.#socket = socket;
    this.#readLimit = options.readLimit;
    this.#copyWrites = options.copyWrites ?? false;
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= this.#readLimit) socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.end());
    socket.on("close", () => this.end());
    socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#notify();
    });
  }

  /**
   * The first `n` bytes waiting, without consuming them (fewer when the stream ends first):
   * what tells a soundsock frame from HTTP on a shared port.
   */
  async peek(n: number): Promise<Uint8Array> {
    while (this.#buffered < n && !this.#ended && !this.#error) {
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
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

  /** Reads decrypted bytes into `p`; null at the end of the stream. */
  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
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
    if (this.#buffered <= this.#readLimit / 2 && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  /** Encrypts and writes all of `p`; resolves to `p.length` once the socket has taken it. */
  write(p: Uint8Array): Promise<number> {
    const bytes = this.#copyWrites ? p.slice() : p;
    return new Promise((resolve, reject) => {
      this.#socket.write(
        bytes,
        (error?: Error | null) => error ? reject(error) : resolve(p.length),
      );
    });
  }

  /** Ends the read side now: a pending and every later {@linkcode read} returns null. */
  end(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
