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
 * The key request budgets and admission count under, {@linkcode sourceKey}, lives in lib/net
 * (tls-server counts per IP the same way) and is re-exported here.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { SECRET_BYTES } from "../wire/messages.ts";
import { PROTOCOL_NAME } from "../wire/frame.ts";
import type { UdpAddress } from "../net/udp_socket.ts";
import { digestsEqual } from "../hash/sha256.ts";

export { sourceKey } from "../net/source_key.ts";

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
  return Buffer.from(crypto.getRandomValues(new Uint8Array(SECRET_BYTES))).toString("hex");
}

/** Compares a received token with the session's in constant time; false when absent. */
export function tokensEqual(a: string | undefined, b: string): boolean {
  return a !== undefined && digestsEqual(a, b);
}
