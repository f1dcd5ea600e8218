/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum every soundsock frame
 * carries. Check value: `crc32c("123456789") === 0xE3069283` (RFC 3720 appendix B.4).
 *
 * Slice-by-8 tables: eight table look-ups per 8 input bytes instead of one per byte, which is
 * what keeps checksumming below the cost of the socket write on the hot path.
 *
 * @module
 */

const POLY = 0x82f63b78;

/** Eight 256-entry tables; table k advances the CRC over a byte k positions further back. */
const TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const t0 = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t0[n]!;
    for (let k = 1; k < 8; k++) {
      c = t0[c & 0xff]! ^ (c >>> 8);
      tables[k]![n] = c >>> 0;
    }
  }
  return tables;
})();

/**
 * Continues a CRC-32C over `bytes`. Start with `crc = 0`; feed pieces in order to checksum
 * data that is not contiguous (a frame's header and payload).
 *
 * @param bytes The next piece of data.
 * @param crc The CRC of everything before `bytes`.
 * @default crc 0
 * @returns The CRC of everything up to and including `bytes`, as an unsigned 32-bit integer.
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  let c = ~crc >>> 0;
  let i = 0;
  const len = bytes.length;
  const end8 = len - (len % 8);
  while (i < end8) {
    const lo = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) ^
      c;
    c = t7[lo & 0xff]! ^ t6[(lo >>> 8) & 0xff]! ^ t5[(lo >>> 16) & 0xff]! ^ t4[lo >>> 24]! ^
      t3[bytes[i + 4]!]! ^ t2[bytes[i + 5]!]! ^ t1[bytes[i + 6]!]! ^ t0[bytes[i + 7]!]!;
    i += 8;
  }
  while (i < len) c = t0[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
