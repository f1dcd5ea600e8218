/**
 * Ogg pages (RFC 3533): the container of an Ogg/Opus stream. A page is
 *
 * ```
 *  0      4  5      6             14         18         22    26   27      27+n
 *  +------+--+------+-------------+----------+----------+-----+----+-------+------//
 *  |OggS  |0 |flags | granule     | serial   | sequence | CRC |n   |lacing | data
 *  |      |  |      | i64 LE      | u32 LE   | u32 LE   | LE  |    |n bytes|
 *  +------+--+------+-------------+----------+----------+-----+----+-------+------//
 * ```
 *
 * flags: 1 continued packet, 2 first page (BOS), 4 last page (EOS). A packet of L bytes takes
 * `floor(L / 255) + 1` lacing values (255, 255, …, L mod 255); a page holds at most 255. The CRC
 * is CRC-32 with polynomial 0x04c11db7, not reflected, initial value 0 and no final xor, over
 * the whole page with the CRC field set to 0. The granule of a page is the position after the
 * last packet that ends on it. This writer puts whole packets on each page (no continuation).
 *
 * @module
 */

/** Page header flag: the first packet continues one from the previous page. */
export const OGG_CONTINUED = 1;
/** Page header flag: first page of a logical stream. */
export const OGG_BOS = 2;
/** Page header flag: last page of a logical stream. */
export const OGG_EOS = 4;
/** Bytes of a page header before its lacing table. */
export const OGG_HEADER_BYTES = 27;
/** Lacing values a page can hold. */
export const OGG_MAX_SEGMENTS = 255;
/** Largest packet one page can hold whole (255 lacing values, the last below 255). */
export const OGG_MAX_PACKET = 255 * 254 + 254;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
})();

/** The Ogg CRC-32 (polynomial 0x04c11db7, MSB first, init 0, no final xor) of `bytes`. */
export function oggCrc(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ bytes[i]!) & 0xff]!;
  }
  return crc >>> 0;
}

/** Lacing values a packet of `length` bytes takes. */
export function oggSegments(length: number): number {
  return Math.floor(length / 255) + 1;
}

/** Writes the pages of one logical Ogg stream (one serial number, sequence from 0). */
export class OggStreamWriter {
  /** The stream's serial number. */
  readonly serial: number;
  #sequence = 0;

  /** A writer for stream `serial` (a u32). */
  constructor(serial: number) {
    if (!Number.isInteger(serial) || serial < 0 || serial > 0xffffffff) {
      throw new RangeError(`Ogg serial ${serial} is not a u32`);
    }
    this.serial = serial;
  }

  /** Pages written so far (the next page's sequence number). */
  get pagesWritten(): number {
    return this.#sequence;
  }

  /**
   * One page holding `packets` whole, with granule position `granule` (−1n: no packet ends
   * here) and header `flags` (OGG_BOS, OGG_EOS).
   *
   * @throws {RangeError} the packets need more than 255 lacing values
   */
  page(packets: readonly Uint8Array[], granule: bigint, flags = 0): Uint8Array {
    let segments = 0;
    let bodyBytes = 0;
    for (const p of packets) {
      segments += oggSegments(p.length);
      bodyBytes += p.length;
    }
    if (segments > OGG_MAX_SEGMENTS) {
      throw new RangeError(
        `Cannot write an Ogg page: ${segments} lacing values exceed ${OGG_MAX_SEGMENTS}`,
      );
    }
    const page = new Uint8Array(OGG_HEADER_BYTES + segments + bodyBytes);
    const view = new DataView(page.buffer);
    page.set([0x4f, 0x67, 0x67, 0x53]); // "OggS"
    page[4] = 0;
    page[5] = flags;
    view.setBigInt64(6, granule, true);
    view.setUint32(14, this.serial, true);
    view.setUint32(18, this.#sequence, true);
    page[26] = segments;
    let lace = OGG_HEADER_BYTES;
    let at = OGG_HEADER_BYTES + segments;
    for (const p of packets) {
      for (let left = p.length; left >= 0; left -= 255) page[lace++] = Math.min(left, 255);
      page.set(p, at);
      at += p.length;
    }
    view.setUint32(22, oggCrc(page), true);
    this.#sequence = (this.#sequence + 1) >>> 0;
    return page;
  }
}
