/**
 * Loads the OpenSSL record layer (`native/soundsock_tls.c`, built by ./build.ts) and makes
 * server contexts from PEM certificates. {@linkcode loadNativeTls} never throws: without a
 * C compiler, OpenSSL headers or libssl it says why, and tls-server uses node:tls instead.
 * `SOUNDSOCK_TLS_ENGINE=node` chooses node:tls on purpose (comparisons, tests).
 *
 * @module
 */

import { ensureTlsLibrary } from "./build.ts";

const symbols = {
  sst_ctx_new: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "pointer" },
  sst_ctx_free: { parameters: ["pointer"], result: "void" },
  sst_conn_new: { parameters: ["pointer", "i32"], result: "pointer" },
  sst_conn_free: { parameters: ["pointer"], result: "void" },
  sst_feed: {
    parameters: ["pointer", "buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  sst_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sst_write_many: {
    parameters: ["buffer", "i32", "buffer", "i32", "buffer"],
    result: "void",
  },
  sst_shutdown: { parameters: ["pointer"], result: "i32" },
  sst_queued: { parameters: ["pointer"], result: "i32" },
  sst_take: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  sst_conn_error: { parameters: ["pointer"], result: "pointer" },
  sst_conn_protocol: { parameters: ["pointer"], result: "pointer" },
  sst_conn_own_records: { parameters: ["pointer"], result: "i32" },
  sst_version: { parameters: [], result: "pointer" },
  sst_find_socket: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
} as const;

/** The library's functions. */
export type NativeTlsSymbols = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** `sst_feed` flags (native/soundsock_tls.c). */
export const FEED_HANDSHAKE_DONE = 1;
/** The peer sent close_notify. */
export const FEED_PEER_CLOSED = 2;
/** A fatal TLS error. */
export const FEED_ERROR = 4;
/** More plaintext waits: call again without input. */
export const FEED_MORE = 8;

/** The library, or why it is not available. */
export type NativeTlsLoad =
  | { ok: true; lib: NativeTlsSymbols; version: string }
  | { ok: false; reason: string };

let loading: Promise<NativeTlsLoad> | undefined;

/** Loads (building on first use) the native TLS library; the result is cached. */
export function loadNativeTls(): Promise<NativeTlsLoad> {
  loading ??= load();
  return loading;
}

async function load(): Promise<NativeTlsLoad> {
  if (Deno.env.get("SOUNDSOCK_TLS_ENGINE") === "node") {
    return { ok: false, reason: "SOUNDSOCK_TLS_ENGINE=node" };
  }
  try {
    const path = Deno.env.get("SOUNDSOCK_TLS_LIB") ?? await ensureTlsLibrary();
    const lib = Deno.dlopen(path, symbols).symbols;
    return { ok: true, lib, version: cString(lib.sst_version()) };
  } catch (error) {
    // Deno.dlopen repeats its prefix ("Could not open library: Could not open library: …").
    const message = (error as Error).message.replace(/^(Could not open library: )+/, "");
    return { ok: false, reason: message };
  }
}

/** A NUL-terminated C string. */
export function cString(p: Deno.PointerValue): string {
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

const encoder = new TextEncoder();

/** A string as a NUL-terminated buffer. */
export function cText(text: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A certificate chain and key loaded into an OpenSSL server context. */
export class NativeTlsContext {
  /** The library's functions. */
  readonly lib: NativeTlsSymbols;
  /** The `SSL_CTX *`. */
  readonly pointer: Deno.PointerObject;
  /** OpenSSL's version, e.g. "OpenSSL 3.0.19 …". */
  readonly version: string;

  private constructor(lib: NativeTlsSymbols, pointer: Deno.PointerObject, version: string) {
    this.lib = lib;
    this.pointer = pointer;
    this.version = version;
  }

  /**
   * A context for `cert` (PEM, chain allowed) and `key` (PEM).
   * @throws {Error} when OpenSSL refuses them (the message says why)
   */
  static create(
    loaded: Extract<NativeTlsLoad, { ok: true }>,
    cert: string,
    key: string,
  ): NativeTlsContext {
    const err = new Uint8Array(256);
    const ctx = loaded.lib.sst_ctx_new(cText(cert), cText(key), err, err.length);
    if (ctx === null) {
      const end = err.indexOf(0);
      throw new Error(new TextDecoder().decode(err.subarray(0, end < 0 ? err.length : end)));
    }
    return new NativeTlsContext(loaded.lib, ctx, loaded.version);
  }
}
