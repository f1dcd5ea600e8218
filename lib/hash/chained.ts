/**
 * A SHA-256 that can stop after any whole 64-byte block and go on later — in another session,
 * another process — from a 40-byte saved state, and that gives the digest of everything hashed
 * so far after each step without ending. file-send's chunk hashes are built on it
 * (docs/PROTOCOL.md §10.5): chunk i's hash is the SHA-256 of the file's first i+1 chunks, so
 * one pass gives every chunk's hash and the whole file's (the last one), and a resume goes on
 * from the state saved after the last verified chunk instead of reading the chunks before it.
 *
 * The work is OpenSSL's (`sst_sha256_chain` in native/soundsock_tls.c, through FFI, on a
 * worker thread so the caller's thread goes on meanwhile); where that library cannot be built
 * or loaded, a TypeScript implementation of FIPS 180-4 here gives the same results, slower.
 * `SOUNDSOCK_SHA256=js` chooses it on purpose (tests).
 *
 * @module
 */

import { ensureTlsLibrary } from "../tls/native/build.ts";

/** Bytes of a saved state: h0..h7 (big-endian words), then the byte count (big-endian u64). */
export const SHA256_STATE_SIZE = 40;

/** The state hex does not describe a SHA-256 state at a block boundary. */
export class Sha256StateError extends Error {
  override name = "Sha256StateError";
}

/** Hashes `data` into `state` (updated in place when the new total is a multiple of 64) and
 * writes the digest so far into `digest`; the result as `sst_sha256_chain`'s. */
type ChainFunction = (
  state: Uint8Array,
  data: Uint8Array,
  digest: Uint8Array,
) => number | Promise<number>;

let engine: { chain: ChainFunction; name: string } | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads the native engine (building the library on first use) or settles for the TypeScript
 * one. Called before the first {@linkcode ChainedSha256.update}; later calls return at once.
 */
export function loadChainedSha256(): Promise<void> {
  loading ??= (async () => {
    if (Deno.env.get("SOUNDSOCK_SHA256") !== "js") {
      try {
        const path = Deno.env.get("SOUNDSOCK_TLS_LIB") ?? await ensureTlsLibrary();
        const lib = Deno.dlopen(path, {
          sst_sha256_chain: {
            parameters: ["buffer", "buffer", "usize", "buffer"],
            result: "i32",
            nonblocking: true,
          },
        });
        engine = {
          chain: (state, data, digest) =>
            lib.symbols.sst_sha256_chain(state, data, BigInt(data.length), digest),
          name: "openssl",
        };
        return;
      } catch {
        // No C compiler, no OpenSSL headers, or FFI not allowed: the TypeScript engine.
      }
    }
    engine = { chain: _chainInTypeScript, name: "typescript" };
  })();
  return loading;
}

/** Which engine hashes: `"openssl"` or `"typescript"` (after {@linkcode loadChainedSha256}). */
export function chainedSha256Engine(): string | undefined {
  return engine?.name;
}

const IV = [
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
];

/** An incremental SHA-256 whose state can be saved between whole blocks. */
export class ChainedSha256 {
  readonly #state = new Uint8Array(SHA256_STATE_SIZE);
  /** False once a step ended inside a block (a file's last chunk): nothing may follow it. */
  #atBoundary = true;
  #bytes = 0;

  private constructor() {}

  /** A SHA-256 of nothing yet. */
  static fresh(): ChainedSha256 {
    const hash = new ChainedSha256();
    const view = new DataView(hash.#state.buffer);
    IV.forEach((word, i) => view.setUint32(4 * i, word));
    return hash;
  }

  /**
   * Goes on from a state saved by {@linkcode stateHex}.
   *
   * @throws {Sha256StateError} when `hex` is not 80 hex digits of a state at a block boundary.
   */
  static fromState(hex: string): ChainedSha256 {
    if (!/^[0-9a-f]{80}$/.test(hex)) throw new Sha256StateError("not a SHA-256 state");
    const hash = new ChainedSha256();
    for (let i = 0; i < SHA256_STATE_SIZE; i++) {
      hash.#state[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    }
    hash.#bytes = Number(new DataView(hash.#state.buffer).getBigUint64(32));
    if (hash.#bytes % 64 !== 0) throw new Sha256StateError("a SHA-256 state inside a block");
    return hash;
  }

  /** Bytes hashed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Hashes the next bytes and resolves to the SHA-256 of everything hashed so far (32 bytes).
   * `bytes` must not change until it resolves. Only the last step may be of a length that is
   * not a multiple of 64.
   */
  async update(bytes: Uint8Array): Promise<Uint8Array> {
    if (!this.#atBoundary) throw new Sha256StateError("nothing can follow a partial block");
    if (!engine) await loadChainedSha256();
    const digest = new Uint8Array(32);
    const result = await engine!.chain(this.#state, bytes, digest);
    if (result < 0) throw new Sha256StateError("a SHA-256 state inside a block");
    this.#atBoundary = result === 1;
    this.#bytes += bytes.length;
    return digest;
  }

  /** The state as 80 hex digits, to go on later with {@linkcode fromState}; null after a
   * partial block. */
  stateHex(): string | null {
    if (!this.#atBoundary) return null;
    return Array.from(this.#state, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}

// ---------------------------------------------------------------------------------------------
// FIPS 180-4 SHA-256 in TypeScript: the fallback engine (exported for its test only).

const K = new Uint32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

const W = new Uint32Array(64);

/** Runs the compression function over the whole 64-byte blocks of `data` into `h`. */
function compress(h: Uint32Array, data: Uint8Array): void {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let block = 0; block + 64 <= data.length; block += 64) {
    for (let t = 0; t < 16; t++) W[t] = view.getUint32(block + 4 * t);
    for (let t = 16; t < 64; t++) {
      const w15 = W[t - 15]!, w2 = W[t - 2]!;
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      W[t] = (W[t - 16]! + s0 + W[t - 7]! + s1) >>> 0;
    }
    let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, k = h[7]!;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[t]! + W[t]!) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] = h[0]! + a;
    h[1] = h[1]! + b;
    h[2] = h[2]! + c;
    h[3] = h[3]! + d;
    h[4] = h[4]! + e;
    h[5] = h[5]! + f;
    h[6] = h[6]! + g;
    h[7] = h[7]! + k;
  }
}

export function _chainInTypeScript(
  state: Uint8Array,
  data: Uint8Array,
  digest: Uint8Array,
): number {
  const view = new DataView(state.buffer, state.byteOffset, SHA256_STATE_SIZE);
  const before = view.getBigUint64(32);
  if (before % 64n !== 0n) return -1;
  const h = new Uint32Array(8);
  for (let i = 0; i < 8; i++) h[i] = view.getUint32(4 * i);
  const whole = data.length - (data.length % 64);
  compress(h, data.subarray(0, whole));
  const total = before + BigInt(data.length);
  // The digest: the rest, 0x80, zeros, the length in bits — on a copy, so the state goes on.
  const tail = data.subarray(whole);
  const padded = new Uint8Array(tail.length + 9 <= 64 ? 64 : 128);
  padded.set(tail);
  padded[tail.length] = 0x80;
  new DataView(padded.buffer).setBigUint64(padded.length - 8, total * 8n);
  const end = h.slice();
  compress(end, padded);
  const out = new DataView(digest.buffer, digest.byteOffset, 32);
  for (let i = 0; i < 8; i++) out.setUint32(4 * i, end[i]!);
  if (total % 64n !== 0n) return 0;
  for (let i = 0; i < 8; i++) view.setUint32(4 * i, h[i]!);
  view.setBigUint64(32, total);
  return 1;
}
