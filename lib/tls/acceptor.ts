/**
 * Accepting TLS connections without letting hostile peers stop the server:
 *
 * - limits count per source IP ({@linkcode sourceKey}: an IPv6 /64 is one address);
 * - floods are counted exactly and logged sparingly (first 100 of each event, then every
 *   1000th);
 * - an `accept()` error (EMFILE when descriptors run out, ECONNABORTED…) is logged and retried
 *   after a short backoff (10 ms doubling to 1 s, reset by the next success) instead of ending
 *   the loop, so the server serves again as soon as the attacker leaves (a
 *   {@linkcode NativeTcpListener}, whose accept loop ends silently on such an error, is
 *   re-armed whenever no connection came for {@linkcode REARM_MS}; descriptors found
 *   exhausted then are logged as the accept error);
 * - handshakes in progress are limited per IP and in total; past a limit the oldest pending
 *   handshake (from the same IP first) is dropped, so a slowloris flood ages out its own
 *   sockets in favour of new arrivals;
 * - a handshake that does not finish within the timeout closes its TCP socket
 *   ({@linkcode ServerTlsConn}).
 *
 * @module
 */

import { delay } from "@std/async/delay";
import type net from "node:net";
import type tls from "node:tls";
import { LogThrottle } from "../cli/log_throttle.ts";
import { closeQuietly } from "../net/close.ts";
import { sourceKey } from "../net/source_key.ts";
import { NativeTlsConn } from "./native/conn.ts";
import type { NativeTlsContext } from "./native/ffi.ts";
import { HandshakeError, type ServerConnection, ServerTlsConn } from "./server_conn.ts";
import { NativeTcpListener, type TcpListener } from "./tcp_listener.ts";

/** A {@linkcode NativeTcpListener} that accepted nothing for this long is re-armed. */
export const REARM_MS = 250;

/** Limits for {@linkcode acceptTls}. */
export interface AcceptLimits {
  /** Time allowed for one TLS handshake. */
  handshakeTimeoutMs: number;
  /** Handshakes in progress from one IP address. */
  maxPendingPerIp: number;
  /** Handshakes in progress in total. */
  maxPending: number;
}

/** Options for {@linkcode acceptTls}. */
export interface AcceptTlsOptions extends AcceptLimits {
  secureContext: tls.SecureContext;
  /**
   * OpenSSL's context for the same certificate: with a `Deno.listen` listener, handshakes
   * run on OpenSSL (lib/tls/native/conn.ts) instead of node:tls.
   */
  nativeContext?: NativeTlsContext;
  /** Stops accepting (closes the listener) and aborts pending handshakes. */
  signal: AbortSignal;
  /** Called with every connection whose handshake completed. */
  onConnection: (conn: ServerConnection) => void;
  /** Records an event (accept errors, dropped sockets, failed handshakes). */
  log: (event: string, fields: Record<string, unknown>) => void;
}

/** Counters kept by {@linkcode acceptTls}. */
export interface AcceptStats {
  /** TCP connections accepted. */
  accepted: number;
  /** Handshakes that failed or timed out (dropped ones are counted in `dropped`). */
  handshakeFailures: number;
  /** Pending handshakes dropped because of the pending-handshake limits. */
  dropped: number;
  /** `accept()` calls that failed (and were retried). */
  acceptErrors: number;
}

/**
 * Accepts TCP connections on `listener` and runs their TLS handshakes until `signal` aborts.
 * Resolves once the listener is closed and every pending handshake has ended.
 */
export async function acceptTls(
  listener: TcpListener,
  options: AcceptTlsOptions,
  stats: AcceptStats,
): Promise<void> {
  const { signal } = options;
  // Flood events are counted exactly but logged sparingly (first 100, then every 1000th).
  const throttle = new LogThrottle();
  const log = (event: string, fields: Record<string, unknown>) => {
    const n = throttle.admit(event);
    if (n > 0) options.log(event, n > 1 ? { ...fields, count: n } : fields);
  };
  // Closing the listener is what ends a pending accept().
  const stop = () =>
    listener instanceof NativeTcpListener ? listener.close() : closeQuietly(listener);
  signal.addEventListener("abort", stop, { once: true });
  /** Pending handshakes, oldest first (Map keeps insertion order). */
  const pending = new Map<object, { controller: AbortController; remote: string }>();
  const pendingPerIp = new Map<string, Set<object>>();
  const handshakes = new Set<Promise<void>>();

  /** Admits one accepted TCP socket (`key`) and runs its handshake with `start`. */
  const admit = (
    key: object,
    remoteAddr: Deno.NetAddr,
    start: (signal: AbortSignal) => Promise<ServerConnection>,
  ) => {
    stats.accepted++;
    const ip = sourceKey(remoteAddr.hostname);
    const fromIp = pendingPerIp.get(ip) ?? new Set<object>();
    // Past a limit the oldest pending handshake goes (from this address first): a flood ages
    // out its own sockets instead of locking out the clients that arrive after it.
    const evict = fromIp.size >= options.maxPendingPerIp
      ? fromIp.values().next().value
      : pending.size >= options.maxPending
      ? pending.keys().next().value
      : undefined;
    if (evict) {
      stats.dropped++;
      const victim = pending.get(evict);
      log("drop_connection", {
        remote: victim?.remote,
        reason: "too many TLS handshakes in progress; dropped the oldest",
      });
      victim?.controller.abort(new HandshakeError("dropped: too many handshakes in progress"));
    }
    const controller = new AbortController();
    pending.set(key, { controller, remote: remoteAddr.hostname });
    fromIp.add(key);
    pendingPerIp.set(ip, fromIp);
    // Aborted when this socket is evicted, and for every pending socket when the loop ends.
    const handshake = start(controller.signal).then(
      (conn) => options.onConnection(conn),
      (error) => {
        // An evicted socket was counted and logged as dropped; a stop is not a failure.
        if (controller.signal.aborted) return;
        stats.handshakeFailures++;
        log("handshake_failed", {
          remote: `${remoteAddr.hostname}:${remoteAddr.port}`,
          error: (error as Error).message,
        });
      },
    ).finally(() => {
      pending.delete(key);
      fromIp.delete(key);
      if (fromIp.size === 0) pendingPerIp.delete(ip);
      handshakes.delete(handshake);
    });
    handshakes.add(handshake);
  };
  const handshakeOptions = (signal: AbortSignal) => ({
    secureContext: options.secureContext,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    signal,
  });

  if (listener instanceof NativeTcpListener) {
    await acceptNative(listener, signal, stats, log, (socket) => {
      const remoteAddr: Deno.NetAddr = {
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      };
      admit(socket, remoteAddr, (s) => ServerTlsConn.acceptSocket(socket, handshakeOptions(s)));
    });
  } else {
    let backoffMs = 0;
    while (!signal.aborted) {
      let tcp: Deno.TcpConn;
      try {
        tcp = await listener.accept();
        backoffMs = 0;
      } catch (error) {
        if (signal.aborted || error instanceof Deno.errors.BadResource) break;
        stats.acceptErrors++;
        backoffMs = Math.min(1000, backoffMs === 0 ? 10 : backoffMs * 2);
        log("accept_failed", { error: (error as Error).message, retryMs: backoffMs });
        await delay(backoffMs, { signal }).catch(() => {});
        continue;
      }
      const { nativeContext } = options;
      admit(tcp, tcp.remoteAddr, (s) =>
        // node:tls over the JS stream only when OpenSSL cannot have the socket.
        (nativeContext &&
          NativeTlsConn.accept(tcp, { ...handshakeOptions(s), context: nativeContext })) ??
          ServerTlsConn.accept(tcp, handshakeOptions(s)));
    }
  }
  signal.removeEventListener("abort", stop);
  stop();
  for (const { controller } of pending.values()) controller.abort();
  await Promise.all(handshakes);
}

/**
 * Serves `listener`'s connections until `signal` aborts. Deno's native accept loop ends
 * silently on an accept error, so whenever no connection came for {@linkcode REARM_MS} the
 * listener is re-armed. The error itself is not reported; its usual cause is: no file
 * descriptor left when a connection has just been accepted (or at a re-arm) is counted and
 * logged as `accept_failed`.
 */
async function acceptNative(
  listener: NativeTcpListener,
  signal: AbortSignal,
  stats: AcceptStats,
  log: (event: string, fields: Record<string, unknown>) => void,
  onSocket: (socket: net.Socket) => void,
): Promise<void> {
  const { server } = listener;
  let accepted = 0;
  const exhaustedNow = () => {
    const exhausted = descriptorsExhausted();
    if (!exhausted) return;
    stats.acceptErrors++;
    log("accept_failed", { error: exhausted, retryMs: REARM_MS });
  };
  const onConnection = (socket: net.Socket) => {
    accepted++;
    // Probed before this socket's admission can free one (an eviction): no descriptor left
    // now means the next accept() fails and the native loop stops (re-armed below).
    exhaustedNow();
    onSocket(socket);
  };
  const onError = (error: Error) => {
    stats.acceptErrors++;
    log("accept_failed", { error: error.message, retryMs: REARM_MS });
  };
  server.on("connection", onConnection);
  server.on("error", onError);
  let seen = 0;
  const watch = setInterval(() => {
    if (accepted !== seen) {
      seen = accepted;
      return;
    }
    exhaustedNow();
    listener.rearm();
  }, REARM_MS);
  try {
    if (!signal.aborted) {
      await new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => resolve(), { once: true })
      );
    }
  } finally {
    clearInterval(watch);
    server.off("connection", onConnection);
    listener.close();
    server.off("error", onError);
    server.on("error", () => {});
  }
}

/** Whether /dev/null may be opened without a permission prompt (checked once). */
let mayProbe: boolean | undefined;

/** The error message when no file descriptor can be opened now; undefined otherwise. */
function descriptorsExhausted(): string | undefined {
  mayProbe ??= Deno.permissions.querySync({ name: "read", path: "/dev/null" }).state === "granted";
  if (!mayProbe) return undefined;
  try {
    Deno.openSync("/dev/null").close();
    return undefined;
  } catch (error) {
    const message = (error as Error).message;
    return /too many open files|os error 2[34]\b/i.test(message) ? message : undefined;
  }
}
