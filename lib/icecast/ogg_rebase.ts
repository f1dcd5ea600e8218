/**
 * Per-listener granule positions for a shared live Ogg stream.
 *
 * A live Ogg/Opus stream is muxed once and its pages are handed to every listener (as Icecast
 * does). A listener joining after an hour then receives pages whose granule positions say "one
 * hour in". RFC 7845 allows that (a non-zero start time), and mpv, ffmpeg and browsers play it,
 * but VLC 3 does not: it waits for its clock to reach the first page's time and in practice ends
 * the stream after one page. So each listener gets the shared pages with its own granule
 * positions (its first audio page holds exactly its own samples, as if the stream had started
 * there) and its own page sequence numbers (consecutive from 2, after the two header pages).
 *
 * Rewriting 12 bytes of a page changes its CRC. Recomputing the CRC of every page for every
 * listener costs ~6.7 µs a page here (1000 listeners: ~3 % of a core). The Ogg CRC is linear
 * (init 0, no final xor), so the new CRC is the old one XOR the CRC of the difference: the
 * difference is zero except bytes 6–21, so its CRC is the CRC of those 16 bytes carried over
 * the page's remaining `length − 22` zero bytes, which is a multiplication by the constant
 * `x^(8 × (length − 22)) mod P`. That constant depends on the page alone and is computed once
 * per page ({@linkcode sharedOggPage}); each listener then pays 16 table steps and one 32-bit
 * carry-less multiplication.
 *
 * @module
 */

import { oggCrc } from "./ogg.ts";

const POLY = 0x04c11db7;

/** `a · b mod P` for polynomials over GF(2) of degree < 32, MSB first (the Ogg CRC's P). */
function mulMod(a: number, b: number): number {
  let r = 0;
  for (let bit = 31; bit >= 0; bit--) {
    r = r & 0x80000000 ? (r << 1) ^ POLY : r << 1;
    if ((b >>> bit) & 1) r ^= a;
  }
  return r >>> 0;
}

/** `x^(8n) mod P`: what `n` zero bytes do to a CRC state (by squaring). */
function zeroBytesOperator(n: number): number {
  let result = 1; // x^0
  let base = 0x100; // x^8
  for (let e = n; e > 0; e = Math.floor(e / 2)) {
    if (e & 1) result = mulMod(result, base);
    base = mulMod(base, base);
  }
  return result;
}

/** A page of the shared stream, with what {@linkcode OggRebaser} needs precomputed. */
export interface SharedOggPage {
  /** The page as muxed (shared by every listener: never modified). */
  readonly bytes: Uint8Array;
  /** Its granule position (−1n: no packet ends on it). */
  readonly granule: bigint;
  /** Its page sequence number. */
  readonly sequence: number;
  /** Samples of the packets that end on it (48 kHz), for a listener's first page. */
  readonly samples: number;
  /** `x^(8 × (length − 22)) mod P`: carries a CRC difference of bytes 6–21 to the page's end. */
  readonly crcCarry: number;
}

/**
 * Wraps one muxed page (a whole Ogg page, as OggStreamWriter makes) for rebasing.
 * @throws {RangeError} when `bytes` is not one whole Ogg page
 */
export function sharedOggPage(bytes: Uint8Array, samples: number): SharedOggPage {
  if (bytes.length < 27 || bytes[0] !== 0x4f || bytes[1] !== 0x67 || bytes[2] !== 0x67) {
    throw new RangeError("not an Ogg page");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    bytes,
    granule: view.getBigInt64(6, true),
    sequence: view.getUint32(18, true),
    samples,
    crcCarry: zeroBytesOperator(bytes.length - 22),
  };
}

/**
 * One listener's view of the shared stream: the first page given to {@linkcode rebase} starts
 * its time line (granule = that page's samples) and its page numbering (sequence 2).
 */
export class OggRebaser {
  #granuleOffset: bigint | undefined;
  #sequenceOffset = 0;
  readonly #diff = new Uint8Array(16);
  readonly #diffView = new DataView(this.#diff.buffer);

  /** Shared pages → this listener's bytes for them (one new buffer, pages in order). */
  rebase(pages: readonly SharedOggPage[]): Uint8Array {
    let total = 0;
    for (const p of pages) total += p.bytes.length;
    const out = new Uint8Array(total);
    this.rebaseInto(pages, out);
    return out;
  }

  /**
   * {@linkcode rebase} into `out` (at least as long as the pages), e.g. a buffer the caller
   * reuses for every batch (lib/web/listener_queue.ts): a fresh buffer per listener per batch
   * cost /stream about half its CPU per listener (bench/web_stream.ts).
   */
  rebaseInto(pages: readonly SharedOggPage[], out: Uint8Array): void {
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let at = 0;
    for (const page of pages) {
      out.set(page.bytes, at);
      if (this.#granuleOffset === undefined) {
        if (page.granule < 0n) {
          // A page with no packet end cannot start a time line: pass it on unchanged.
          at += page.bytes.length;
          continue;
        }
        this.#granuleOffset = page.granule - BigInt(page.samples);
        this.#sequenceOffset = page.sequence - 2;
      }
      const granule = page.granule < 0n ? page.granule : page.granule - this.#granuleOffset;
      const sequence = (page.sequence - this.#sequenceOffset) >>> 0;
      // The CRC of the difference: bytes 6–13 (granule) and 18–21 (sequence); 14–17 are zero.
      this.#diffView.setBigInt64(0, granule ^ page.granule, true);
      this.#diffView.setUint32(8, 0, true);
      this.#diffView.setUint32(12, (sequence ^ page.sequence) >>> 0, true);
      const crcDiff = mulMod(oggCrc(this.#diff), page.crcCarry);
      view.setBigInt64(at + 6, granule, true);
      view.setUint32(at + 18, sequence, true);
      view.setUint32(at + 22, (view.getUint32(at + 22, true) ^ crcDiff) >>> 0, true);
      at += page.bytes.length;
    }
  }
}
