/**
 * SPAKE2 (RFC 9382) with the ciphersuite SPAKE2-P256-SHA256-HKDF-HMAC, on `@noble/curves`.
 *
 * Party A sends `pA = x·G + w·M`, party B sends `pB = y·G + w·N`; both compute
 * `K = x·(pB − w·N) = y·(pA − w·M)` and the transcript
 *
 *     TT = len(A) || A || len(B) || B || len(pA) || pA || len(pB) || pB || len(K) || K
 *          || len(w) || w
 *
 * (`len` = 8-byte little-endian length; points uncompressed SEC1, 65 bytes; `w` 32 bytes
 * big-endian). `Ke || Ka = SHA-256(TT)`; `KcA || KcB = HKDF-SHA256(salt = none, ikm = Ka,
 * info = "ConfirmationKeys" || AAD, 32 bytes)`; A's confirmation is `HMAC-SHA256(KcA, TT)`,
 * B's `HMAC-SHA256(KcB, TT)`. file-send puts the TLS certificate fingerprint each side sees
 * into `AAD`, so a relay that terminates TLS makes both confirmations fail.
 *
 * A wrong password is detected only at confirmation: each connection allows one guess, and
 * the transcript gives a passive or active attacker nothing to test guesses against offline.
 *
 * @module
 */

import { p256 } from "@noble/curves/nist";
import { hkdf } from "@noble/hashes/hkdf";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha2";
import { timingSafeEqual } from "node:crypto";

type Point = InstanceType<typeof p256.Point>;

/** RFC 9382 section 6: M for P-256 (compressed SEC1). */
export const M_HEX = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f";
/** RFC 9382 section 6: N for P-256 (compressed SEC1). */
export const N_HEX = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49";

const ORDER = p256.Point.Fn.ORDER;
const M: Point = p256.Point.fromHex(M_HEX);
const N: Point = p256.Point.fromHex(N_HEX);
const encoder = new TextEncoder();

/** Length of a share on the wire (uncompressed SEC1 P-256 point). */
export const SHARE_SIZE = 65;
/** Length of a confirmation MAC. */
export const CONFIRM_SIZE = 32;

/** A peer's share is not a valid point (or makes K the identity). */
export class Spake2Error extends Error {
  override name = "Spake2Error";
}

/** Which side of the exchange: A sends `x·G + w·M`, B sends `y·G + w·N`. */
export type Spake2Role = "A" | "B";

/** Options for {@linkcode Spake2}. */
export interface Spake2Options {
  /** Identity of A (may be empty). @default {""} */
  idA?: Uint8Array | string;
  /** Identity of B (may be empty). @default {""} */
  idB?: Uint8Array | string;
  /** Additional data bound into the confirmation keys. @default {empty} */
  aad?: Uint8Array;
  /** The secret scalar (tests use the RFC's); random when left out. */
  scalar?: bigint;
}

/** Keys and MACs derived once the peer's share is known. */
export interface Spake2Result {
  /** The transcript TT. */
  transcript: Uint8Array;
  /** Shared secret for the application (16 bytes). */
  ke: Uint8Array;
  /** Key the confirmation keys are derived from (16 bytes). */
  ka: Uint8Array;
  /** A's confirmation key. */
  kcA: Uint8Array;
  /** B's confirmation key. */
  kcB: Uint8Array;
  /** The MAC this side sends. */
  confirm: Uint8Array;
  /** The MAC the peer must send. */
  expected: Uint8Array;
}

/** One side of a SPAKE2 exchange. */
export class Spake2 {
  /** This side's share, to send to the peer. */
  readonly share: Uint8Array;
  readonly #role: Spake2Role;
  readonly #w: bigint;
  readonly #scalar: bigint;
  readonly #options: Spake2Options;

  /** Starts an exchange with the password scalar `w` (see {@linkcode passwordScalar}). */
  constructor(role: Spake2Role, w: bigint, options: Spake2Options = {}) {
    if (w <= 0n || w >= ORDER) throw new RangeError("SPAKE2 password scalar out of range");
    this.#role = role;
    this.#w = w;
    this.#options = options;
    this.#scalar = options.scalar ?? randomScalar();
    if (this.#scalar <= 0n || this.#scalar >= ORDER) throw new RangeError("scalar out of range");
    const blind = role === "A" ? M : N;
    this.share = p256.Point.BASE.multiply(this.#scalar).add(blind.multiply(w)).toBytes(false);
  }

  /**
   * Derives the keys from the peer's share.
   *
   * @throws {Spake2Error} when the share is not an uncompressed point on P-256, or K is the
   * identity.
   */
  finish(peerShare: Uint8Array): Spake2Result {
    if (peerShare.length !== SHARE_SIZE || peerShare[0] !== 4) {
      throw new Spake2Error("the peer's key share is not an uncompressed P-256 point");
    }
    let peer: Point;
    try {
      peer = p256.Point.fromBytes(peerShare);
      peer.assertValidity();
    } catch (cause) {
      throw new Spake2Error("the peer's key share is not a point on P-256", { cause });
    }
    const unblind = this.#role === "A" ? N : M;
    const base = peer.subtract(unblind.multiply(this.#w));
    if (base.is0()) throw new Spake2Error("the peer's key share is degenerate");
    const k = base.multiply(this.#scalar);
    if (k.is0()) throw new Spake2Error("the shared point is the identity");
    const [pA, pB] = this.#role === "A" ? [this.share, peerShare] : [peerShare, this.share];
    const transcript = lengthPrefixed([
      bytesOf(this.#options.idA ?? ""),
      bytesOf(this.#options.idB ?? ""),
      pA,
      pB,
      k.toBytes(false),
      scalarBytes(this.#w),
    ]);
    const digest = sha256(transcript);
    const ke = digest.slice(0, 16);
    const ka = digest.slice(16, 32);
    const info = concat([
      encoder.encode("ConfirmationKeys"),
      this.#options.aad ?? new Uint8Array(),
    ]);
    const kc = hkdf(sha256, ka, undefined, info, 32);
    const kcA = kc.slice(0, 16);
    const kcB = kc.slice(16, 32);
    const macA = hmac(sha256, kcA, transcript);
    const macB = hmac(sha256, kcB, transcript);
    return {
      transcript,
      ke,
      ka,
      kcA,
      kcB,
      confirm: this.#role === "A" ? macA : macB,
      expected: this.#role === "A" ? macB : macA,
    };
  }
}

/**
 * The password scalar `w` for a code: HKDF-SHA256 of the normalized code into 48 bytes,
 * reduced modulo the group order (bias below 2^-128). No memory-hard function: nothing
 * stored can be stolen, and each online guess costs the attacker a connection.
 */
export function passwordScalar(code: string, context = "file-send v1"): bigint {
  const okm = hkdf(
    sha256,
    encoder.encode(code),
    encoder.encode(context),
    encoder.encode("SPAKE2 w"),
    48,
  );
  const w = bytesToBigInt(okm) % (ORDER - 1n) + 1n;
  return w;
}

/** Compares two MACs in constant time (false for different lengths). */
export function macsEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function randomScalar(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(48));
  return bytesToBigInt(bytes) % (ORDER - 1n) + 1n;
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function scalarBytes(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function bytesOf(value: Uint8Array | string): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : value;
}

function lengthPrefixed(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + 8 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const part of parts) {
    view.setBigUint64(at, BigInt(part.length), true);
    out.set(part, at + 8);
    at += 8 + part.length;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
