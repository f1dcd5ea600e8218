/**
 * Which TLS implementation a server runs on. OpenSSL through our native library
 * (lib/tls/native/) when it loads — about half of node:tls's CPU per write and memory per
 * connection (bench/RESULTS-tls-fanout.md) — else node:tls. Both keep the hardening rules of
 * lib/tls/acceptor.ts: every socket can be closed mid-handshake, buffers are bounded.
 *
 * @module
 */

import tls from "node:tls";
import { NativeTlsContext, type NativeTlsLoad } from "./native/ffi.ts";
import { listenTcp, type TcpListener } from "./tcp_listener.ts";

/** The certificate or key given to the server cannot be used (exit status 1). */
export class ServerIdentityError extends Error {
  override name = "ServerIdentityError";
}

/** A server's TLS set-up: node:tls's context always (fallback), OpenSSL's when available. */
export interface ServerTls {
  /** node:tls context (used when OpenSSL is not, and for sockets it cannot take). */
  secureContext: tls.SecureContext;
  /** OpenSSL's context, when the native library loaded. */
  nativeContext?: NativeTlsContext;
  /** For the log: `OpenSSL 3.0.19 …`, or `node:tls (why not OpenSSL)`. */
  engine: string;
}

/**
 * Loads `cert` and `key` into node:tls and, when `native` is a loaded library, into OpenSSL.
 * @throws {ServerIdentityError} when either refuses them
 */
export function serverTls(cert: string, key: string, native?: NativeTlsLoad): ServerTls {
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ cert, key });
  } catch (cause) {
    throw new ServerIdentityError(
      `The server certificate or key cannot be used: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (!native?.ok) {
    return { secureContext, engine: `node:tls (${native?.reason ?? "OpenSSL not loaded"})` };
  }
  try {
    const nativeContext = NativeTlsContext.create(native, cert, key);
    return { secureContext, nativeContext, engine: nativeContext.version };
  } catch (cause) {
    throw new ServerIdentityError(
      `The server certificate or key cannot be used: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/**
 * Listens for `tls`: `Deno.listen` for OpenSSL (which needs a `Deno.TcpConn`), else the
 * node:net route of lib/tls/tcp_listener.ts.
 * @throws the `Deno.listen` error (`Deno.errors.AddrInUse`, …)
 */
export function listenForTls(
  tls: ServerTls,
  options: { hostname: string; port: number },
): TcpListener {
  return tls.nativeContext ? Deno.listen(options) : listenTcp(options);
}
