/**
 * A deliberately small HTTP/1.1 server side: one request per connection (`Connection: close`),
 * read with hard limits before anything is allocated for it:
 *
 * - the request head (request line + headers) is at most `maxHeaderBytes` (431 past it);
 * - a body needs `Content-Length` (411 without it for POST; `Transfer-Encoding` is refused
 *   with 501) and is at most `maxBodyBytes` (413 past it);
 * - head and body must arrive within `timeoutMs` of the connection's start (408, then close).
 *
 * Why not `Deno.serve` or `node:https`: `Deno.serve` has no limit on connections, no header
 * read timeout and no per-connection socket handle to drop a slow reader with, and
 * `node:http`'s limits (`maxHeaderSize`, `headersTimeout`) are not all honoured by Deno's
 * compatibility layer. Reading the request ourselves over the server's own TLS connections
 * (lib/tls/server_conn.ts: handshake timeout, per-IP handshake limits, bounded buffers) keeps
 * every limit ours and lets one port carry both soundsock frames and HTTP.
 *
 * @module
 */

import { HttpError } from "./errors.ts";

/** The byte stream a request arrives on (a {@linkcode ServerTlsConn} fits). */
export interface HttpConn {
  readonly remoteAddr: Deno.NetAddr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  /** Takes all of `p` before it returns; false: wait for {@linkcode whenDrained} (optional). */
  writeNow?(p: Uint8Array): boolean;
  /** Resolves once what `writeNow` left buffered is below the mark. */
  whenDrained?(): Promise<void>;
  close(): void;
}

/** Limits of {@linkcode readRequest}. */
export interface RequestLimits {
  /** Largest request head (request line and headers). @default {8192} */
  maxHeaderBytes?: number;
  /** Largest body. @default {1024} */
  maxBodyBytes?: number;
  /** Time for the whole request to arrive. @default {10000} */
  timeoutMs?: number;
}

/** One parsed request. */
export interface HttpRequest {
  method: string;
  /** The path without the query, e.g. `/status.json`. */
  path: string;
  /** The query string without `?` (empty when none). */
  query: string;
  /** Header names in lower case; a repeated header keeps its last value. */
  headers: Map<string, string>;
  body: Uint8Array;
}

const CRLF2 = [13, 10, 13, 10];

function findHeadEnd(buf: Uint8Array, len: number): number {
  outer: for (let i = 0; i + 4 <= len; i++) {
    for (let k = 0; k < 4; k++) if (buf[i + k] !== CRLF2[k]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Reads one request from `conn` within the limits.
 * @throws {HttpError} the request is malformed, too large or too slow (its status says which)
 */
export async function readRequest(
  conn: HttpConn,
  limits: RequestLimits = {},
  prefix: Uint8Array = new Uint8Array(0),
): Promise<HttpRequest> {
  const maxHeader = limits.maxHeaderBytes ?? 8192;
  const maxBody = limits.maxBodyBytes ?? 1024;
  const timeoutMs = limits.timeoutMs ?? 10_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  const late = () => new HttpError(408, `Request not received within ${timeoutMs} ms`);
  try {
    // The head, plus at most one read's worth past it.
    const buf = new Uint8Array(maxHeader + 4 + maxBody);
    buf.set(prefix.subarray(0, buf.length));
    let len = Math.min(prefix.length, buf.length);
    let end = findHeadEnd(buf, len);
    while (end < 0) {
      if (len >= maxHeader + 4) {
        throw new HttpError(431, `Request header is larger than ${maxHeader} bytes`);
      }
      const n = await conn.read(buf.subarray(len, maxHeader + 4));
      if (n === null) {
        if (timedOut) throw late();
        throw new HttpError(400, "Connection closed before the request was complete");
      }
      const from = Math.max(0, len - 3);
      len += n;
      const at = findHeadEnd(buf.subarray(from), len - from);
      if (at >= 0) end = from + at;
    }
    if (end > maxHeader) {
      throw new HttpError(431, `Request header is larger than ${maxHeader} bytes`);
    }
    const head = new TextDecoder("latin1").decode(buf.subarray(0, end));
    const [requestLine = "", ...lines] = head.split("\r\n");
    const m = requestLine.match(/^([A-Z]{1,16}) (\/[^ ]*) HTTP\/1\.[01]$/);
    if (!m) throw new HttpError(400, "Malformed request line");
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new HttpError(400, "Malformed header line");
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    if (headers.has("transfer-encoding")) {
      throw new HttpError(501, "Transfer-Encoding is not supported; send Content-Length");
    }
    const method = m[1]!;
    const target = m[2]!;
    const q = target.indexOf("?");
    const path = q < 0 ? target : target.slice(0, q);
    const query = q < 0 ? "" : target.slice(q + 1);
    const lengthText = headers.get("content-length");
    let length = 0;
    if (lengthText !== undefined) {
      if (!/^\d{1,10}$/.test(lengthText)) throw new HttpError(400, "Malformed Content-Length");
      length = Number(lengthText);
    } else if (method === "POST") {
      throw new HttpError(411, "POST needs a Content-Length");
    }
    if (length > maxBody) {
      throw new HttpError(413, `Request body is larger than ${maxBody} bytes`);
    }
    const bodyStart = end + 4;
    while (len < bodyStart + length) {
      const n = await conn.read(buf.subarray(len, bodyStart + length));
      if (n === null) {
        if (timedOut) throw late();
        throw new HttpError(400, "Connection closed before the body was complete");
      }
      len += n;
    }
    return { method, path, query, headers, body: buf.slice(bodyStart, bodyStart + length) };
  } catch (error) {
    if (timedOut && !(error instanceof HttpError && error.status === 408)) throw late();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/**
 * The status line and headers of a response (`Connection: close` is always added; a body
 * length, when known, becomes `Content-Length`).
 */
export function responseHead(
  status: number,
  headers: Record<string, string>,
  contentLength?: number,
): Uint8Array {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (contentLength !== undefined) lines.push(`Content-Length: ${contentLength}`);
  lines.push("Connection: close", "X-Content-Type-Options: nosniff", "", "");
  return new TextEncoder().encode(lines.join("\r\n"));
}

/** Writes a whole response (head and body) to `conn`. */
export async function writeResponse(
  conn: HttpConn,
  status: number,
  contentType: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<void> {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const head = responseHead(status, { "Content-Type": contentType, ...headers }, bytes.length);
  const all = new Uint8Array(head.length + bytes.length);
  all.set(head);
  all.set(bytes, head.length);
  await conn.write(all);
}
