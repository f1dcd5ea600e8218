/**
 * A UDP socket as a disposable resource, over `Deno.listenDatagram` (needs `--unstable-net`,
 * enabled in deno.json). Sends never throw for a vanished peer: a failed send is counted,
 * because on UDP a peer going away is normal, not an error of ours.
 *
 * @module
 */

import { AF_INET, AF_INET6, findUdpSocketFd } from "./_libc_udp.ts";
import { ListenError } from "./listen_error.ts";
import { parseHostPort } from "./host_port.ts";

/** An IP address and port. */
export interface UdpAddress {
  hostname: string;
  port: number;
}

/** `host:port`, with brackets for IPv6 — the key sessions are stored under. */
export function formatAddress(addr: UdpAddress): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** udp-server's port when none is given. */
export const DEFAULT_UDP_PORT = 9000;

/**
 * Parses `HOST:PORT` (`[::1]:9000`, `localhost:9000`, `127.0.0.1:0`), or `HOST` alone when a
 * `defaultPort` is given (see lib/net/host_port.ts).
 *
 * @throws {TypeError} with a user-facing message if it is not of that form.
 */
export function parseAddress(text: string, defaultPort?: number): UdpAddress {
  return parseHostPort(text, defaultPort, { allowPortZero: true });
}

/** Most sends awaiting completion on one socket (about 10 MB of 1232-byte datagrams). */
export const MAX_SENDS_IN_FLIGHT = 8192;

const RESOLVED_FALSE = Promise.resolve(false);

/** The address as Deno's send() takes it; returned as is if it already is one. */
export function toNetAddr(addr: UdpAddress | Deno.NetAddr): Deno.NetAddr {
  return "transport" in addr
    ? addr
    : { transport: "udp", hostname: addr.hostname, port: addr.port };
}

/** A bound UDP socket. */
export class UdpSocket implements Disposable {
  readonly #conn: Deno.DatagramConn;
  #closed = false;
  /** Sends that failed (unreachable peer, buffer full). */
  sendErrors = 0;
  /** Datagrams dropped because too many sends were in flight. */
  sendDropped = 0;
  /** Datagrams sent. */
  sent = 0;

  private constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
  }

  /**
   * Binds `hostname:port` (port 0 picks a free port).
   *
   * @throws {ListenError} `Cannot bind UDP 127.0.0.1:9000: address in use` and similar.
   */
  static bind(hostname: string, port: number): UdpSocket {
    try {
      return new UdpSocket(Deno.listenDatagram({ transport: "udp", hostname, port }));
    } catch (cause) {
      throw new ListenError(`bind UDP ${formatAddress({ hostname, port })}`, cause);
    }
  }

  /** The bound address (with the real port when 0 was asked for). */
  get address(): UdpAddress {
    const a = this.#conn.addr as Deno.NetAddr;
    return { hostname: a.hostname, port: a.port };
  }

  /** The socket's address family as Linux numbers it (`AF_INET` 2, `AF_INET6` 10). */
  get family(): number {
    return this.address.hostname.includes(":") ? AF_INET6 : AF_INET;
  }

  #fd: number | null | undefined;

  /**
   * The socket's file descriptor, for the batch sends of lib/net/udp_fanout.ts; undefined once
   * closed (the number may then belong to another file) or where it cannot be found (not
   * Linux, no FFI). Looked up once.
   */
  nativeFd(): number | undefined {
    if (this.#closed) return undefined;
    if (this.#fd === undefined) {
      this.#fd = findUdpSocketFd(this.family, this.address.port) ?? null;
    }
    return this.#fd ?? undefined;
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one datagram; resolves false (and counts) if the OS refused it, or if
   * {@linkcode MAX_SENDS_IN_FLIGHT} sends are already waiting — then the datagram is dropped
   * (`sendDropped`) rather than queued: a sender that outruns the network loses packets, it
   * does not grow without bound. Pass an address from {@linkcode toNetAddr} on hot paths to
   * avoid building one per datagram.
   */
  send(bytes: Uint8Array, to: UdpAddress | Deno.NetAddr): Promise<boolean> {
    if (this.#closed) return RESOLVED_FALSE;
    if (this.#inFlight >= MAX_SENDS_IN_FLIGHT) {
      this.sendDropped++;
      return RESOLVED_FALSE;
    }
    this.#inFlight++;
    return this.#conn.send(bytes, toNetAddr(to)).then(this.#sent, this.#failed);
  }

  #inFlight = 0;
  #sent = (): boolean => {
    this.#inFlight--;
    this.sent++;
    return true;
  };
  #failed = (): boolean => {
    this.#inFlight--;
    this.sendErrors++;
    return false;
  };

  /**
   * Waits for the next datagram. The returned bytes are a view of `buffer`, valid until the
   * next call. Resolves null once the socket is closed.
   */
  async receive(buffer: Uint8Array): Promise<{ data: Uint8Array; from: UdpAddress } | null> {
    for (;;) {
      if (this.#closed) return null;
      try {
        const [data, addr] = await this.#conn.receive(buffer);
        const a = addr as Deno.NetAddr;
        return { data, from: { hostname: a.hostname, port: a.port } };
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return null;
        // ICMP port-unreachable from an earlier send surfaces here on some systems: ignore.
        if (error instanceof Deno.errors.ConnectionRefused) continue;
        if (error instanceof Deno.errors.ConnectionReset) continue;
        throw error;
      }
    }
  }

  /** Closes the socket; pending receives resolve null. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
