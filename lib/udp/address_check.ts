/**
 * Return-address validation for the UDP server (docs/PROTOCOL.md §5.0), as DTLS's
 * HelloVerifyRequest and QUIC's Retry do it: a REQUEST from an address not yet proven is
 * answered only with a small CHALLENGE carrying a stateless cookie, and nothing else is sent to
 * that address until a REQUEST echoes the cookie. Forging a source address then gets the
 * victim one CHALLENGE per forged REQUEST (smaller than 3x the REQUEST, RFC 9000 §8.1), never a
 * stream.
 *
 * The cookie is `HMAC-SHA256(secret, "soundsock/2 cookie" 0x00 ip 0x00 port 0x00 bucket)`
 * truncated to 16 bytes, where `secret` is 32 random bytes drawn per process and `bucket` is
 * `floor(ms / COOKIE_PERIOD_MS)` as decimal text: it is valid in the bucket it was issued in and
 * the next one, so for 10–20 s. The server keeps no state per unproven address.
 *
 * Also here: {@linkcode sourceKey}, the key request budgets and admission count under.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { SECRET_BYTES } from "../wire/messages.ts";
import { PROTOCOL_NAME } from "../wire/frame.ts";
import type { UdpAddress } from "../net/udp_socket.ts";

/** A cookie is valid in the period it was issued in and the next one. */
export const COOKIE_PERIOD_MS = 10_000;
/** Before its address is proven, a peer gets at most this many bytes per byte it sent. */
export const UNVALIDATED_FACTOR = 3;

/** Issues and checks return-address cookies with a per-process secret. */
export class AddressCheck {
  readonly #secret: Uint8Array;
  readonly #now: () => number;

  /** @param now clock in ms (tests pass a fake one). @default {performance.now} */
  constructor(now: () => number = () => performance.now()) {
    this.#secret = crypto.getRandomValues(new Uint8Array(32));
    this.#now = now;
  }

  /** The cookie for `addr` now, as 32 lowercase hex digits. */
  cookieFor(addr: UdpAddress): string {
    return this.#mac(addr, Math.floor(this.#now() / COOKIE_PERIOD_MS)).toString("hex");
  }

  /** Whether `cookie` was issued to `addr` in this period or the one before. */
  verify(addr: UdpAddress, cookie: string): boolean {
    if (!/^[0-9a-f]{32}$/.test(cookie)) return false;
    const given = Uint8Array.from(cookie.match(/../g)!, (h) => parseInt(h, 16));
    const bucket = Math.floor(this.#now() / COOKIE_PERIOD_MS);
    // Both MACs are computed whatever the first gives, so timing says nothing.
    const current = timingSafeEqual(given, this.#mac(addr, bucket));
    const previous = timingSafeEqual(given, this.#mac(addr, bucket - 1));
    return current || previous;
  }

  #mac(addr: UdpAddress, bucket: number) {
    return createHmac("sha256", this.#secret)
      .update(`${PROTOCOL_NAME} cookie\0${addr.hostname}\0${addr.port}\0${bucket}`)
      .digest()
      .subarray(0, SECRET_BYTES);
  }
}

/** A fresh random session token: 32 lowercase hex digits. */
export function newToken(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(SECRET_BYTES)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Compares two tokens in constant time (for equal lengths). */
export function tokensEqual(a: string | undefined, b: string): boolean {
  if (a === undefined || a.length !== b.length) return false;
  const enc = new TextEncoder();
  return timingSafeEqual(enc.encode(a), enc.encode(b));
}

/**
 * The key that request budgets and admission count under: the source IP, never its port (one
 * host can open any number of ports). IPv4 as dotted quad (`::ffff:a.b.c.d` mapped addresses
 * count as `a.b.c.d`); IPv6 as its /64 prefix, `2001:db8:0:1::/64`, since one host is usually
 * given a whole /64. Text that is not an IP address is returned as is.
 */
export function sourceKey(hostname: string): string {
  const host = hostname.replace(/%.*$/, "").toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  if (mapped) return mapped[1]!;
  if (!host.includes(":")) return host;
  const groups = expandIpv6(host);
  if (!groups) return host;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, or undefined if it is not one. */
function expandIpv6(host: string): number[] | undefined {
  let text = host;
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms other than the mapped one above).
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const b = v4.slice(1).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = text.slice(0, v4.index) +
      `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === "" ? [] : s.split(":"));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0 || (halves.length === 1 && head.length !== 8)) return undefined;
  const all = [...head, ...Array(fill).fill("0"), ...tail];
  if (all.length !== 8 || all.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return all.map((g) => parseInt(g, 16));
}
