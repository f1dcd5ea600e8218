/**
 * The TCP listener of a TLS server. Where it can, it listens on node:net's native TCP handle:
 * a `tls.TLSSocket` over such a socket runs the TLS record layer natively (ciphertext never
 * becomes a JS buffer), which costs a third of the memory of a `TLSSocket` over a JS stream of
 * a `Deno.TcpConn` (measured by bench/tls_conn_memory.ts: 56 vs 148 KiB per connection
 * streaming 2 KiB every 100 ms). Every socket can still be closed at any moment, handshake
 * or not (lib/tls/server_conn.ts).
 *
 * The native handle is bound synchronously (so a busy port is the caller's error at once, as
 * with `Deno.listen`). When that is not possible — a host name rather than an IP address, a
 * runtime without the binding, or a bind error (rethrown by `Deno.listen` as the usual
 * `Deno.errors.*`) — {@linkcode listenTcp} returns a `Deno.listen` listener instead, which
 * lib/tls/acceptor.ts serves the same way (over a JS stream).
 *
 * @module
 */

import net from "node:net";
import process from "node:process";

/** node:net's TCP handle, as far as it is used here. */
interface TcpHandle {
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  close(): void;
}

interface TcpBinding {
  TCP: new (type: number) => TcpHandle;
  constants: { SERVER: number };
}

const BACKLOG = 511;

/** A listener on node:net's native TCP handle (see the module doc). */
export class NativeTcpListener {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** The node:net server; its `connection` events are the accepted sockets. */
  readonly server: net.Server;
  #closed = false;

  private constructor(server: net.Server) {
    this.server = server;
    const a = server.address() as net.AddressInfo;
    this.addr = { transport: "tcp", hostname: a.address, port: a.port };
  }

  /** Binds and listens on `hostname:port`; undefined when the native route is not possible. */
  static tryListen(hostname: string, port: number): NativeTcpListener | undefined {
    const ip = hostname === "localhost" ? "127.0.0.1" : hostname;
    const family = net.isIP(ip);
    if (family === 0) return undefined;
    let binding: TcpBinding;
    try {
      binding = (process as unknown as { binding(name: string): TcpBinding }).binding("tcp_wrap");
    } catch {
      return undefined;
    }
    if (typeof binding?.TCP !== "function") return undefined;
    const handle = new binding.TCP(binding.constants.SERVER);
    if ((family === 6 ? handle.bind6(ip, port, 0) : handle.bind(ip, port)) !== 0) {
      handle.close();
      return undefined;
    }
    // allowHalfOpen as on a Deno.TcpConn: a peer's FIN ends only our read side.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    server.listen(handle as unknown as net.ListenOptions);
    if (!server.listening) {
      server.on("error", () => {});
      server.close();
      return undefined;
    }
    return new NativeTcpListener(server);
  }

  /**
   * Starts accepting again. Deno's native accept loop ends silently on an `accept()` error
   * (EMFILE when descriptors run out); listening again restarts it and is harmless while it
   * runs (lib/tls/acceptor.ts calls this whenever no connection arrived for a while).
   */
  rearm(): void {
    if (this.#closed) return;
    (this.server as unknown as { _handle?: TcpHandle | null })._handle?.listen(BACKLOG);
  }

  /** Stops listening. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.server.close();
  }
}

/** What {@linkcode listenTcp} returns. */
export type TcpListener = NativeTcpListener | Deno.TcpListener;

/**
 * Listens on `hostname:port` (the native route when possible, else `Deno.listen`).
 * @throws the `Deno.listen` error (`Deno.errors.AddrInUse`, `AddrNotAvailable`, …)
 */
export function listenTcp(options: { hostname: string; port: number }): TcpListener {
  return NativeTcpListener.tryListen(options.hostname, options.port) ??
    Deno.listen({ hostname: options.hostname, port: options.port });
}
