/**
 * Accepting TLS connections without letting hostile peers stop the server:
 *
 * - limits count per source IP ({@linkcode sourceKey}: an IPv6 /64 is one address);
 * - floods are counted exactly and logged sparingly (first 100 of each event, then every
 *   1000th);
 * - an `accept()` error (EMFILE when descriptors run out, ECONNABORTED…) is logged and retried
 *   after a short backoff (10 ms doubling to 1 s, reset by the next success) instead of ending
 *   the loop, so the server serves again as soon as the attacker leaves;
 * - handshakes in progress are limited per IP and in total; past a limit the oldest pending
 *   handshake (from the same IP first) is dropped, so a slowloris flood ages out its own
 *   sockets in favour of new arrivals;
 * - a handshake that does not finish within the timeout closes its TCP socket
 *   ({@linkcode ServerTlsConn}).
 *
 * @module
 */

import { delay } from "@std/async/delay";
import type tls from "node:tls";
import { LogThrottle } from "../cli/log_throttle.ts";
import { closeQuietly } from "../net/close.ts";
import { sourceKey } from "../net/source_key.ts";
import { HandshakeError, ServerTlsConn } from "./server_conn.ts";

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
  /** Stops accepting (closes the listener) and aborts pending handshakes. */
  signal: AbortSignal;
  /** Called with every connection whose handshake completed. */
  onConnection: (conn: ServerTlsConn) => void;
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
  listener: Deno.TcpListener,
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
  const stop = () => closeQuietly(listener);
  signal.addEventListener("abort", stop, { once: true });
  /** Pending handshakes, oldest first (Map keeps insertion order). */
  const pending = new Map<Deno.TcpConn, AbortController>();
  const pendingPerIp = new Map<string, Set<Deno.TcpConn>>();
  const handshakes = new Set<Promise<void>>();
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
    stats.accepted++;
    const ip = sourceKey(tcp.remoteAddr.hostname);
    const fromIp = pendingPerIp.get(ip) ?? new Set<Deno.TcpConn>();
    // Past a limit the oldest pending handshake goes (from this address first): a flood ages
    // out its own sockets instead of locking out the clients that arrive after it.
    const evict = fromIp.size >= options.maxPendingPerIp
      ? fromIp.values().next().value
      : pending.size >= options.maxPending
      ? pending.keys().next().value
      : undefined;
    if (evict) {
      stats.dropped++;
      log("drop_connection", {
        remote: evict.remoteAddr.hostname,
        reason: "too many TLS handshakes in progress; dropped the oldest",
      });
      pending.get(evict)?.abort(new HandshakeError("dropped: too many handshakes in progress"));
    }
    const controller = new AbortController();
    pending.set(tcp, controller);
    fromIp.add(tcp);
    pendingPerIp.set(ip, fromIp);
    const handshake = ServerTlsConn.accept(tcp, {
      secureContext: options.secureContext,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      // Aborted when this socket is evicted, and for every pending socket when the loop ends.
      signal: controller.signal,
    }).then(
      (conn) => options.onConnection(conn),
      (error) => {
        // An evicted socket was counted and logged as dropped; a stop is not a failure.
        if (controller.signal.aborted) return;
        stats.handshakeFailures++;
        log("handshake_failed", {
          remote: `${tcp.remoteAddr.hostname}:${tcp.remoteAddr.port}`,
          error: (error as Error).message,
        });
      },
    ).finally(() => {
      pending.delete(tcp);
      fromIp.delete(tcp);
      if (fromIp.size === 0) pendingPerIp.delete(ip);
      handshakes.delete(handshake);
    });
    handshakes.add(handshake);
  }
  signal.removeEventListener("abort", stop);
  stop();
  for (const controller of pending.values()) controller.abort();
  await Promise.all(handshakes);
}
