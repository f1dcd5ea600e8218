/**
 * Signed radio frames for the relay overlay (docs/PROTOCOL.md §9.2): the server signs, with
 * Ed25519 (WebCrypto), one RELAY_MANIFEST per window of radio frames: the SHA-256 of every
 * frame of the window, in send order. A manifest is sent *before* the frames it lists, so a
 * listener verifies each frame the moment it arrives (before playing and before forwarding)
 * with one hash, and one signature check per window. The server holds each window back until
 * it is complete (the one added delay, once, at the source — never per hop).
 *
 * Manifest payload (all integers big-endian):
 *
 * ```text
 * 0       4  stream id (the station's)
 * 4       4  manifest index: 0, 1, 2, … (one more for each manifest)
 * 8       2  n: frames listed (1..1024)
 * 10    32n  SHA-256 of each listed frame's whole bytes (header + payload), in send order
 * 10+32n 64  Ed25519 signature over "soundsock/2 relay manifest" NUL ‖ bytes 0..10+32n
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { encodeFrame, FrameType } from "../wire/frame.ts";

/** Prefix of every signed message (domain separation). */
export const MANIFEST_CONTEXT = new TextEncoder().encode("soundsock/2 relay manifest\0");
/** Most frames one manifest lists. */
export const MAX_MANIFEST_FRAMES = 1024;
/** Bytes of a raw Ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32;
const SIG_BYTES = 64;
const HASH_BYTES = 32;
const HEAD = 10;

/** A manifest that cannot be decoded or whose signature is wrong. */
export class ManifestError extends Error {
  override name = "ManifestError";
}

/** A decoded (not yet verified) manifest. */
export interface Manifest {
  /** The station's stream id. */
  streamId: number;
  /** Manifest index. */
  index: number;
  /** SHA-256 of each frame, hex, in send order. */
  hashes: string[];
  /** The signed bytes (context excluded). */
  signed: Uint8Array;
  /** The signature. */
  signature: Uint8Array<ArrayBuffer>;
}

/** SHA-256 of `bytes` as lowercase hex. */
export function frameHash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function withContext(signed: Uint8Array): Uint8Array<ArrayBuffer> {
  const m = new Uint8Array(MANIFEST_CONTEXT.length + signed.length);
  m.set(MANIFEST_CONTEXT);
  m.set(signed, MANIFEST_CONTEXT.length);
  return m;
}

/**
 * Decodes a RELAY_MANIFEST payload (no signature check).
 * @throws {ManifestError} for a payload that is not a manifest
 */
export function decodeManifest(payload: Uint8Array): Manifest {
  if (payload.length < HEAD + HASH_BYTES + SIG_BYTES) {
    throw new ManifestError(`Invalid manifest: ${payload.length} bytes is too short`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const n = view.getUint16(8);
  if (n < 1 || n > MAX_MANIFEST_FRAMES) {
    throw new ManifestError(`Invalid manifest: ${n} frames (1..${MAX_MANIFEST_FRAMES})`);
  }
  if (payload.length !== HEAD + n * HASH_BYTES + SIG_BYTES) {
    throw new ManifestError(`Invalid manifest: ${payload.length} bytes for ${n} frames`);
  }
  const hashes: string[] = [];
  for (let i = 0; i < n; i++) {
    const at = HEAD + i * HASH_BYTES;
    hashes.push(
      [...payload.subarray(at, at + HASH_BYTES)].map((b) => b.toString(16).padStart(2, "0"))
        .join(""),
    );
  }
  const end = HEAD + n * HASH_BYTES;
  return {
    streamId: view.getUint32(0),
    index: view.getUint32(4),
    hashes,
    signed: payload.subarray(0, end),
    signature: payload.slice(end),
  };
}

/** The server side: a key pair and the manifest counter. */
export class ManifestSigner {
  readonly #key: CryptoKey;
  /** Raw 32-byte Ed25519 public key (what listeners are told, §9.1). */
  readonly publicKey: Uint8Array;
  readonly #streamId: number;
  #index = 0;

  private constructor(key: CryptoKey, publicKey: Uint8Array, streamId: number) {
    this.#key = key;
    this.publicKey = publicKey;
    this.#streamId = streamId;
  }

  /** Generates a fresh key pair for one server run. */
  static async create(streamId: number): Promise<ManifestSigner> {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new ManifestSigner(pair.privateKey, raw, streamId);
  }

  /** Index the next manifest gets. */
  get nextIndex(): number {
    return this.#index;
  }

  /**
   * The RELAY_MANIFEST frame (whole bytes) listing `frames` (whole frame bytes, in send order).
   * @throws {RangeError} for 0 or more than {@linkcode MAX_MANIFEST_FRAMES} frames
   */
  async sign(frames: readonly Uint8Array[]): Promise<Uint8Array> {
    const n = frames.length;
    if (n < 1 || n > MAX_MANIFEST_FRAMES) {
      throw new RangeError(`Cannot sign ${n} frames (1..${MAX_MANIFEST_FRAMES})`);
    }
    const index = this.#index;
    this.#index = (this.#index + 1) >>> 0;
    const payload = new Uint8Array(HEAD + n * HASH_BYTES + SIG_BYTES);
    const view = new DataView(payload.buffer);
    view.setUint32(0, this.#streamId);
    view.setUint32(4, index);
    view.setUint16(8, n);
    frames.forEach((f, i) => {
      payload.set(createHash("sha256").update(f).digest(), HEAD + i * HASH_BYTES);
    });
    const signed = payload.subarray(0, HEAD + n * HASH_BYTES);
    const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", this.#key, withContext(signed)));
    payload.set(sig, signed.length);
    return encodeFrame({
      type: FrameType.RELAY_MANIFEST,
      streamId: this.#streamId,
      sequence: index,
      payload,
    });
  }
}

/** What {@linkcode StreamVerifier.manifest} concluded. */
export type ManifestVerdict =
  /** Signature good, newer than the current one: it is now current. */
  | "ok"
  /** The current manifest again (a new parent replays its window): nothing changes. */
  | "same"
  /** Signature good but older than the current one or than the server's floor: ignored. */
  | "replay"
  /** Undecodable, wrong stream, or bad signature: the sender is not to be trusted. */
  | "forged";

/** What {@linkcode StreamVerifier.frame} concluded. */
export type FrameVerdict =
  /** Listed in the current manifest, after the last frame accepted: play and forward it. */
  | "ok"
  /** Listed in the current manifest at or before the last accepted frame: already had it. */
  | "duplicate"
  /** Listed in a recent older manifest only (a lagging parent): dropped, not an attack. */
  | "stale"
  /** Listed nowhere (altered, injected, or sent before any manifest): the sender tampers. */
  | "forged";

interface Window {
  index: number;
  bytes: string;
  positions: Map<string, number>;
}

/** Options for {@linkcode StreamVerifier.create}. */
export interface StreamVerifierOptions {
  /** Manifests with a lower index are replays (the server's current index at join). @default {0} */
  minIndex?: number;
}

/**
 * The listener side: verifies manifests with the server's public key and each frame against
 * the current manifest. Counters say what was rejected.
 */
export class StreamVerifier {
  readonly #key: CryptoKey;
  readonly #streamId: number;
  readonly #minIndex: number;
  #current: Window | undefined;
  #last = -1;
  /** Older windows (the last 4), to tell a lagging parent from a forger. */
  #recent: Window[] = [];
  /** Counters. */
  readonly stats = {
    manifests: 0,
    frames: 0,
    duplicates: 0,
    stale: 0,
    replayedManifests: 0,
    forgedManifests: 0,
    forgedFrames: 0,
  };

  private constructor(key: CryptoKey, streamId: number, minIndex: number) {
    this.#key = key;
    this.#streamId = streamId;
    this.#minIndex = minIndex;
  }

  /**
   * A verifier for `streamId` with the server's raw public key.
   * @throws {ManifestError} when the key is not 32 bytes or cannot be imported
   */
  static async create(
    publicKey: Uint8Array,
    streamId: number,
    options: StreamVerifierOptions = {},
  ): Promise<StreamVerifier> {
    if (publicKey.length !== PUBLIC_KEY_BYTES) {
      throw new ManifestError(`Invalid relay key: ${publicKey.length} bytes (32 expected)`);
    }
    let key: CryptoKey;
    try {
      key = await crypto.subtle.importKey("raw", publicKey.slice(), { name: "Ed25519" }, false, [
        "verify",
      ]);
    } catch (cause) {
      throw new ManifestError("Invalid relay key", { cause });
    }
    return new StreamVerifier(key, streamId, options.minIndex ?? 0);
  }

  /** Index of the current manifest (undefined before the first). */
  get currentIndex(): number | undefined {
    return this.#current?.index;
  }

  /** Checks a RELAY_MANIFEST frame's payload (and header `sequence`, which must equal its index). */
  async manifest(payload: Uint8Array, headerSequence?: number): Promise<ManifestVerdict> {
    let m: Manifest;
    try {
      m = decodeManifest(payload);
    } catch {
      this.stats.forgedManifests++;
      return "forged";
    }
    const text = m.hashes.join("");
    if (this.#current && m.index === this.#current.index && text === this.#current.bytes) {
      // Same manifest as the current one: its signature was checked already.
      return "same";
    }
    const good = m.streamId === this.#streamId &&
      (headerSequence === undefined || headerSequence === m.index) &&
      await crypto.subtle.verify("Ed25519", this.#key, m.signature, withContext(m.signed));
    if (!good) {
      this.stats.forgedManifests++;
      return "forged";
    }
    if (m.index < this.#minIndex || (this.#current && m.index <= this.#current.index)) {
      this.stats.replayedManifests++;
      // Its frames are then "stale", not forged: a lagging parent is not an attacker.
      if (!this.#recent.some((w) => w.index === m.index)) this.#remember(windowOf(m, text));
      return "replay";
    }
    if (this.#current) this.#remember(this.#current);
    this.#current = windowOf(m, text);
    this.#last = -1;
    this.stats.manifests++;
    return "ok";
  }

  /** Checks one frame's whole bytes against the current manifest. */
  frame(bytes: Uint8Array): FrameVerdict {
    const hash = frameHash(bytes);
    const at = this.#current?.positions.get(hash);
    if (at !== undefined) {
      if (at <= this.#last) {
        this.stats.duplicates++;
        return "duplicate";
      }
      this.#last = at;
      this.stats.frames++;
      return "ok";
    }
    if (this.#recent.some((w) => w.positions.has(hash))) {
      this.stats.stale++;
      return "stale";
    }
    this.stats.forgedFrames++;
    return "forged";
  }

  #remember(w: Window): void {
    this.#recent.push(w);
    if (this.#recent.length > 4) this.#recent.shift();
  }
}

function windowOf(m: Manifest, text: string): Window {
  const positions = new Map<string, number>();
  m.hashes.forEach((h, i) => {
    if (!positions.has(h)) positions.set(h, i);
  });
  return { index: m.index, bytes: text, positions };
}
