/**
 * The server side of one TLS connection over a TCP socket we own.
 *
 * Why not `Deno.listenTls`: its `TlsConn.close()` waits for the handshake to finish, so a peer
 * that opens a socket and never speaks keeps a file descriptor for as long as it likes (500
 * such sockets held 526 FDs; ~20k exhaust the server; still so in Deno 2.9.6). Here the TLS
 * layer is `node:tls`'s `TLSSocket` over a TCP socket we own, which can be torn down at any
 * moment: {@linkcode ServerTlsConn.close} closes the TCP socket itself, handshake or not.
 *
 * Two transports: a node:net socket from lib/tls/tcp_listener.ts ({@linkcode
 * ServerTlsConn.acceptSocket}; the TLS record layer runs natively on it, ~56 KiB per
 * streaming connection), or a `Deno.TcpConn` ({@linkcode ServerTlsConn.accept}; the
 * ciphertext goes through a JS duplex stream, ~148 KiB).
 *
 * The class offers the small `read`/`write`/`close` surface the session code uses, with
 * bounded buffering in both directions: reads pause the socket once `readLimit` bytes wait,
 * and a write resolves only when the kernel has taken its bytes, so a peer that stops reading
 * holds at most the caller's own queue plus the write in flight.
 *
 * @module
 */

import type net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { closeQuietly } from "../net/close.ts";
import { TlsSocketStream } from "./socket_stream.ts";

/** Why a handshake did not complete. */
export class HandshakeError extends Error {
  override name = "HandshakeError";
}

/** Options for {@linkcode ServerTlsConn.accept}. */
export interface ServerTlsConnOptions {
  /** Certificate and key, made once with `tls.createSecureContext`. */
  secureContext: tls.SecureContext;
  /** The TCP socket is closed if the handshake has not finished by then. */
  handshakeTimeoutMs: number;
  /** Closes the socket (mid-handshake too); an Error reason becomes the failure's message. */
  signal?: AbortSignal;
  /**
   * Decrypted bytes buffered before the socket is paused (the peer waits in TCP).
   * @default {16384}
   */
  readLimit?: number;
}

/** The TCP side of a {@linkcode ServerTlsConn}. */
interface Transport {
  remoteAddr: Deno.NetAddr;
  /** Ciphertext (or plaintext not yet encrypted) waiting for the kernel. */
  buffered(): number;
  /** Closes the TCP socket (idempotent, never throws). */
  close(): void;
}

/**
 * What the session and web code need from a server TLS connection: node:tls's
 * {@linkcode ServerTlsConn} here, or OpenSSL's `NativeTlsConn` (lib/tls/native/conn.ts).
 */
export interface ServerConnection {
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** Bytes held in the TLS layer, not yet taken by the kernel. */
  readonly bufferedBytes: number;
  /** Negotiated protocol, e.g. `TLSv1.3`. */
  readonly protocol: string | null;
  /** The first `n` decrypted bytes, not consumed (fewer if the stream ends first). */
  peek(n: number): Promise<Uint8Array>;
  /** Reads decrypted bytes into `p`; null at the end of the stream (or once closed). */
  read(p: Uint8Array): Promise<number | null>;
  /** Encrypts and writes all of `p`; resolves (to `p.length`) once the kernel has it. */
  write(p: Uint8Array): Promise<number>;
  /** Hands all of `p` on without waiting; false once the layer's buffer is above its mark. */
  tryWrite(p: Uint8Array): boolean;
  /** Resolves once the buffer is below its mark again (or the connection is gone). */
  whenDrained(): Promise<void>;
  /**
   * Takes all of `p` before it returns (`p` may be reused at once); false once the layer's
   * buffer is above its mark. Only where the layer copies synchronously (OpenSSL's).
   */
  writeNow?(p: Uint8Array): boolean;
  /** Closes (TLS close_notify first when the handshake completed, within `graceMs`). */
  close(graceMs?: number): void;
}

/** A server-side TLS connection whose TCP socket can be closed at any time. */
export class ServerTlsConn implements ServerConnection {
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  readonly #transport: Transport;
  readonly #tls: tls.TLSSocket;
  readonly #readLimit: number;
  #closed = false;
  /** Reads and writes, once the handshake is done. */
  #stream: TlsSocketStream | undefined;
  /** The handshake completed. */
  #secure = false;

  private constructor(transport: Transport, socket: tls.TLSSocket, readLimit: number) {
    this.#transport = transport;
    this.remoteAddr = transport.remoteAddr;
    this.#readLimit = readLimit;
    this.#tls = socket;
  }

  /**
   * Runs the server handshake on `tcp` (over a JS stream). Resolves once it is complete; on
   * failure, timeout or abort the TCP socket is closed and the promise rejects with
   * {@linkcode HandshakeError} (whose message is the abort reason's, when the signal gave one).
   */
  static accept(tcp: Deno.TcpConn, options: ServerTlsConnOptions): Promise<ServerTlsConn> {
    const duplex = tcpDuplex(tcp);
    const socket = serverSocket(duplex, options.secureContext);
    const conn = new ServerTlsConn(
      {
        remoteAddr: tcp.remoteAddr,
        buffered: () => duplex.writableLength,
        close: () => closeQuietly(tcp),
      },
      socket,
      options.readLimit ?? 16384,
    );
    return conn.#handshake(options);
  }

  /**
   * Runs the server handshake on a node:net socket (lib/tls/tcp_listener.ts), natively.
   * Same outcomes as {@linkcode accept}.
   */
  static acceptSocket(tcp: net.Socket, options: ServerTlsConnOptions): Promise<ServerTlsConn> {
    const remoteAddr: Deno.NetAddr = {
      transport: "tcp",
      hostname: tcp.remoteAddress ?? "",
      port: tcp.remotePort ?? 0,
    };
    tcp.on("error", () => {}); // reported through the TLS socket
    const socket = serverSocket(tcp, options.secureContext);
    const conn = new ServerTlsConn(
      {
        remoteAddr,
        buffered: () => socket.writableLength,
        close: () => tcp.destroy(),
      },
      socket,
      options.readLimit ?? 16384,
    );
    return conn.#handshake(options);
  }

  #handshake(options: ServerTlsConnOptions): Promise<ServerTlsConn> {
    const timeout = AbortSignal.timeout(options.handshakeTimeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    return new Promise((resolve, reject) => {
      const socket = this.#tls;
      const fail = (message: string) => {
        cleanup();
        this.close();
        reject(new HandshakeError(message));
      };
      const onSecure = () => {
        cleanup();
        this.#secure = true;
        this.#stream = new TlsSocketStream(socket, { readLimit: this.#readLimit });
        resolve(this);
      };
      const onError = (error: Error) => fail(error.message);
      const onClose = () => fail("the peer closed the connection during the handshake");
      const onAbort = () =>
        fail(
          timeout.aborted
            ? `no TLS handshake within ${options.handshakeTimeoutMs} ms`
            : signal.reason instanceof Error
            ? signal.reason.message
            : "the server is stopping",
        );
      const cleanup = () => {
        socket.off("secure", onSecure);
        socket.off("error", onError);
        socket.off("close", onClose);
        socket.off("end", onClose);
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) return onAbort();
      socket.once("secure", onSecure);
      socket.once("error", onError);
      socket.once("close", onClose);
      // A half-open socket (allowHalfOpen) ends without closing: a handshake cannot go on.
      socket.once("end", onClose);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Ciphertext waiting for the kernel. (The plaintext of a pending {@linkcode write} is the
   * caller's own buffer, counted by the caller.)
   */
  get bufferedBytes(): number {
    return this.#transport.buffered();
  }

  /** Negotiated protocol, e.g. `TLSv1.3`. */
  get protocol(): string | null {
    return this.#tls.getProtocol();
  }

  /** The first `n` decrypted bytes, not consumed (fewer if the stream ends or is closed). */
  peek(n: number): Promise<Uint8Array> {
    return this.#closed || !this.#stream
      ? Promise.resolve(new Uint8Array(0))
      : this.#stream.peek(n);
  }

  /** Reads decrypted bytes into `p`; null at the end of the stream (or once closed). */
  read(p: Uint8Array): Promise<number | null> {
    return this.#closed || !this.#stream ? Promise.resolve(null) : this.#stream.read(p);
  }

  /** Encrypts and writes all of `p`; resolves (to `p.length`) when the kernel has taken it. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed || !this.#stream) {
      return Promise.reject(new Deno.errors.BadResource("connection closed"));
    }
    return this.#stream.write(p);
  }

  /**
   * Hands all of `p` to the TLS socket without waiting (`p` must not change afterwards: the
   * socket may keep it until it is written); false once the socket's buffer is above its
   * high-water mark (then wait for {@linkcode whenDrained}). Write errors end the connection
   * (the reader sees them).
   * @throws {Deno.errors.BadResource} when the connection is closed
   */
  tryWrite(p: Uint8Array): boolean {
    if (this.#closed || !this.#stream || this.#tls.destroyed) {
      throw new Deno.errors.BadResource("connection closed");
    }
    return this.#tls.write(p);
  }

  /** Resolves once the socket's buffer drained below its mark, or the socket closed. */
  whenDrained(): Promise<void> {
    const socket = this.#tls;
    if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  /**
   * Closes the connection. After a completed handshake the peer is sent TLS close_notify and
   * given up to `graceMs` to answer; the TCP socket is closed then at the latest (at once
   * when the handshake never finished). Idempotent.
   */
  close(graceMs = 1000): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream?.end();
    const socket = this.#tls;
    const transport = this.#transport;
    if (!this.#secure || socket.destroyed) {
      socket.destroy();
      transport.close();
      return;
    }
    const hard = setTimeout(() => {
      socket.destroy();
      transport.close();
    }, graceMs);
    socket.once("close", () => {
      clearTimeout(hard);
      transport.close();
    });
    socket.end();
  }
}

/** A server `TLSSocket` over `transport`. */
function serverSocket(transport: Duplex, secureContext: tls.SecureContext): tls.TLSSocket {
  return new tls.TLSSocket(transport, {
    isServer: true,
    secureContext,
    // TLS 1.0/1.1 are deprecated (RFC 8996).
    minVersion: "TLSv1.2",
  } as tls.TLSSocketOptions);
}

/**
 * A Node duplex stream over a Deno TCP connection, for `tls.TLSSocket` to run on. Reads are
 * small (clients send short control frames; the handshake arrives in a few reads) and stop
 * while the TLS layer is not asking for more; each write resolves when the kernel took it.
 */
function tcpDuplex(tcp: Deno.TcpConn, readSize = 4096): Duplex {
  let reading = false;
  const duplex: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      void (async () => {
        const buf = new Uint8Array(readSize);
        try {
          for (;;) {
            const n = await tcp.read(buf);
            if (n === null) {
              duplex.push(null);
              return;
            }
            if (!duplex.push(buf.slice(0, n))) break;
          }
        } catch (error) {
          duplex.destroy(error as Error);
        } finally {
          reading = false;
        }
      })();
    },
    write(chunk: Uint8Array, _encoding, callback) {
      void (async () => {
        let at = 0;
        while (at < chunk.length) at += await tcp.write(chunk.subarray(at));
      })().then(() => callback(), (error) => callback(error));
    },
    final(callback) {
      tcp.closeWrite().then(() => callback(), () => callback());
    },
    destroy(error, callback) {
      closeQuietly(tcp);
      callback(error);
    },
  });
  return duplex;
}
