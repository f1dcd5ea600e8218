/**
 * Opening a TLS connection to tls-server, with the three trust modes of tls-client:
 *
 * - **verify** (default): `Deno.connectTls` with the given CA; rustls checks the chain and the
 *   host name.
 * - **pin** (`--pin SHA256`): the server must present exactly the certificate with that SHA-256
 *   (of its DER). `Deno.TlsConn` exposes no peer certificate (`handshake()` returns only the
 *   ALPN protocol), so this mode connects through `node:tls`, whose `getPeerCertificate().raw`
 *   Deno implements. The pin replaces CA and host name checks (it names one certificate).
 * - **insecure** (`--insecure`): `node:tls` with `rejectUnauthorized: false` — nothing is
 *   verified; the caller must warn the user.
 *
 * Failures become {@linkcode TlsConnectError} with one readable line.
 *
 * @module
 */

import tls from "node:tls";
import { digestsEqual, sha256Hex } from "../hash/sha256.ts";
import type { ByteReader } from "../wire/stream_decoder.ts";
import type { ByteWriter } from "./send_queue.ts";
import { parseHostPort } from "../net/host_port.ts";
import { TlsSocketStream } from "./socket_stream.ts";

/** A connected byte stream: what the client reads frames from and writes requests to. */
export interface ClientConn extends ByteReader, ByteWriter {
  /** Closes the connection. Idempotent. */
  close(): void;
}

/** Where to connect. */
export interface ServerAddress {
  hostname: string;
  port: number;
}

/** Default tls-server port. */
export const DEFAULT_TLS_PORT = 8443;

/**
 * Parses `HOST:PORT`, `HOST`, `[IPv6]:PORT` or `IPv6`.
 *
 * @throws {TypeError} with a user-facing message.
 */
export function parseServerAddress(text: string): ServerAddress {
  return parseHostPort(text, DEFAULT_TLS_PORT);
}

/** Why a connection could not be made; `message` is the one line to show. */
export class TlsConnectError extends Error {
  /** Exit status (1: network or trust failure). */
  readonly exitCode = 1;
  /** Stable reason for programs and tests. */
  readonly reason:
    | "refused"
    | "unknown_ca"
    | "hostname"
    | "expired"
    | "pin"
    | "not_tls"
    | "timeout"
    | "dns"
    | "other";
  /** Creates the error. */
  constructor(reason: TlsConnectError["reason"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsConnectError";
    this.reason = reason;
  }
}

/** Options for {@linkcode connectToServer}. */
export interface ConnectOptions {
  /** CA certificates (PEM) trusted in verify mode. @default {[]} (system roots only) */
  caCerts?: string[];
  /**
   * The default CA file, when it does not exist (verify mode then trusts only the system
   * roots): an unknown-authority failure names it and how to create it.
   */
  missingCa?: string;
  /** Expected SHA-256 of the server certificate (pin mode). */
  pin?: string;
  /** Verify nothing (insecure mode). @default {false} */
  insecure?: boolean;
  /** Connect + handshake time limit. @default {10000} */
  timeoutMs?: number;
  /** Cancels connecting. */
  signal?: AbortSignal;
}

/** A connection and what was learned about the server's certificate. */
export interface Connected {
  conn: ClientConn;
  /** SHA-256 of the server certificate, when the mode can see it (pin / insecure). */
  peerPin?: string;
}

/**
 * Connects and completes the TLS handshake.
 *
 * @throws {TlsConnectError} with a one-line explanation.
 */
export async function connectToServer(
  address: ServerAddress,
  options: ConnectOptions = {},
): Promise<Connected> {
  const where = `${
    address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
  }:${address.port}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const signal = options.signal
    ? AbortSignal.any([AbortSignal.timeout(timeoutMs), options.signal])
    : AbortSignal.timeout(timeoutMs);
  try {
    if (options.pin !== undefined || options.insecure) {
      return await connectNode(address, options, signal);
    }
    const hostname = address.hostname;
    const conn = await abortable(
      Deno.connectTls({ hostname, port: address.port, caCerts: options.caCerts }),
      signal,
      (c) => c.close(),
    );
    try {
      await abortable(conn.handshake(), signal);
    } catch (error) {
      conn.close();
      throw error;
    }
    return { conn };
  } catch (error) {
    throw explain(error, where, signal, options);
  }
}

function explain(
  error: unknown,
  where: string,
  signal: AbortSignal,
  options: ConnectOptions,
): Error {
  const userSignal = options.signal;
  if (error instanceof TlsConnectError) return error;
  if (userSignal?.aborted) return userSignal.reason;
  const cause = { cause: error };
  const at = `Cannot connect to ${where}`;
  if (signal.aborted) return new TlsConnectError("timeout", `${at}: timed out`, cause);
  const m = (error as Error)?.message ?? String(error);
  const code = (error as { code?: string })?.code ?? "";
  if (error instanceof Deno.errors.ConnectionRefused || code === "ECONNREFUSED") {
    return new TlsConnectError(
      "refused",
      `${at}: connection refused (is tls-server running there?)`,
      cause,
    );
  }
  if (/UnknownIssuer|BadSignature|unable to (get|verify)|self.signed/i.test(m + code)) {
    const fix = options.missingCa === undefined
      ? "pass --ca FILE"
      : `"${options.missingCa}" (the default --ca) does not exist: run \`deno task certs\` ` +
        "and start tls-server with the certificates it makes, or pass --ca FILE or --pin SHA256";
    return new TlsConnectError(
      "unknown_ca",
      `${at}: certificate signed by an unknown authority — ${fix}`,
      cause,
    );
  }
  if (/not valid for name|NotValidForName|altnames|ERR_TLS_CERT_ALTNAME/i.test(m + code)) {
    const host = where.replace(/:\d+$/, "");
    return new TlsConnectError(
      "hostname",
      `${at}: the server's certificate is not valid for the name ${host} (hostname mismatch)`,
      cause,
    );
  }
  if (/Expired|CERT_HAS_EXPIRED/i.test(m + code)) {
    return new TlsConnectError("expired", `${at}: the server's certificate has expired`, cause);
  }
  if (/NotValidYet|CERT_NOT_YET_VALID/i.test(m + code)) {
    return new TlsConnectError(
      "expired",
      `${at}: the server's certificate is not valid yet`,
      cause,
    );
  }
  if (/corrupt message|InvalidContentType|wrong version|packet length/i.test(m)) {
    return new TlsConnectError("not_tls", `${at}: the server does not speak TLS`, cause);
  }
  if (/lookup|ENOTFOUND|Name or service/i.test(m + code)) {
    return new TlsConnectError("dns", `${at}: unknown host`, cause);
  }
  if (/reset|closed|EOF|UnexpectedEof/i.test(m)) {
    return new TlsConnectError(
      "other",
      `${at}: the server closed the connection during the TLS handshake`,
      cause,
    );
  }
  return new TlsConnectError("other", `${at}: ${m}`, cause);
}

async function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  cleanup?: (value: T) => void,
): Promise<T> {
  signal.throwIfAborted();
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } catch (error) {
    // The connection may still arrive after we gave up: close it then.
    if (cleanup) promise.then(cleanup, () => {});
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

async function connectNode(
  address: ServerAddress,
  options: ConnectOptions,
  signal: AbortSignal,
): Promise<Connected> {
  const isIp = /^[\d.]+$/.test(address.hostname) || address.hostname.includes(":");
  const socket = tls.connect({
    host: address.hostname,
    port: address.port,
    // SNI must be a DNS name; IP literals are sent without it.
    servername: isIp ? undefined : address.hostname,
    rejectUnauthorized: false,
  });
  try {
    await abortable(
      new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", () => resolve());
        socket.once("error", reject);
      }),
      signal,
    );
  } catch (error) {
    socket.destroy();
    throw error;
  }
  const raw = socket.getPeerCertificate()?.raw as Uint8Array | undefined;
  const peerPin = raw && raw.length > 0 ? sha256Hex(raw) : undefined;
  if (options.pin !== undefined) {
    if (!peerPin || !digestsEqual(peerPin, options.pin)) {
      socket.destroy();
      throw new TlsConnectError(
        "pin",
        `Cannot connect to ${address.hostname}:${address.port}: the server's certificate does not ` +
          `match --pin (it presented sha256 ${peerPin ?? "nothing"})`,
      );
    }
  }
  return { conn: new NodeSocketConn(socket), peerPin };
}

/**
 * A `node:tls` client socket seen as a {@linkcode ClientConn}: up to 4 MiB of received data is
 * queued before the socket is paused; writes copy the caller's buffer.
 */
export class NodeSocketConn extends TlsSocketStream implements ClientConn {
  readonly #socket: tls.TLSSocket;

  /** Wraps a connected socket. */
  constructor(socket: tls.TLSSocket) {
    super(socket, { readLimit: 4 * 1024 * 1024, copyWrites: true });
    this.#socket = socket;
  }

  /** Closes the socket. */
  close(): void {
    this.#socket.destroy();
  }
}
