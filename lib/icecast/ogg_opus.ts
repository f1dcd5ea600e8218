/**
 * Ogg/Opus (RFC 7845): one logical Ogg stream holding an Opus stream. The first page holds only
 * the identification header, the second only the comment header, both with granule 0:
 *
 * ```
 * OpusHead (19 bytes): "OpusHead" | version 1 | channels u8 | pre-skip u16 LE |
 *                      input rate u32 LE | output gain i16 LE (0) | mapping family 0
 * OpusTags:            "OpusTags" | vendor length u32 LE | vendor | count u32 LE |
 *                      count × ([length u32 LE] "KEY=value" UTF-8)
 * ```
 *
 * Audio pages follow; a page's granule is the number of 48 kHz samples (per channel) of every
 * packet up to the last one ending on it, counted from the start of the stream, pre-skip
 * included (a player discards the first pre-skip samples: the encoder's lookahead).
 *
 * @module
 */

import { OGG_BOS, OGG_EOS, OGG_MAX_SEGMENTS, oggSegments, OggStreamWriter } from "./ogg.ts";

/** Options of {@linkcode OggOpusMuxer}. */
export interface OggOpusMuxerOptions {
  /** Ogg serial number. @default {a random u32} */
  serial?: number;
  /** Channels (1 or 2; mapping family 0). @default {2} */
  channels?: number;
  /** Samples to discard at the start (the encoder lookahead, 48 kHz). @default {312} */
  preSkip?: number;
  /** Sample rate of the original input (informational). @default {48000} */
  inputRate?: number;
  /** Vendor string of OpusTags. @default {"soundsock"} */
  vendor?: string;
  /** User comments of OpusTags, e.g. `{ TITLE: "Nocturne" }`. */
  tags?: Record<string, string>;
  /** Most audio on one page in 48 kHz samples (a page ends when it would exceed it). @default {4800} */
  maxPageSamples?: number;
}

/** The OpusHead identification header. */
export function opusHead(channels: number, preSkip: number, inputRate: number): Uint8Array {
  if (channels !== 1 && channels !== 2) throw new RangeError(`OpusHead: ${channels} channels`);
  if (!Number.isInteger(preSkip) || preSkip < 0 || preSkip > 0xffff) {
    throw new RangeError(`OpusHead: pre-skip ${preSkip} is not a u16`);
  }
  const head = new Uint8Array(19);
  const view = new DataView(head.buffer);
  head.set(new TextEncoder().encode("OpusHead"));
  head[8] = 1;
  head[9] = channels;
  view.setUint16(10, preSkip, true);
  view.setUint32(12, inputRate, true);
  view.setInt16(16, 0, true);
  head[18] = 0;
  return head;
}

/** The OpusTags comment header. */
export function opusTags(vendor: string, tags: Record<string, string> = {}): Uint8Array {
  const enc = new TextEncoder();
  const v = enc.encode(vendor);
  const comments = Object.entries(tags).map(([k, val]) => enc.encode(`${k}=${val}`));
  const size = 8 + 4 + v.length + 4 + comments.reduce((n, c) => n + 4 + c.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(enc.encode("OpusTags"));
  view.setUint32(8, v.length, true);
  out.set(v, 12);
  let at = 12 + v.length;
  view.setUint32(at, comments.length, true);
  at += 4;
  for (const c of comments) {
    view.setUint32(at, c.length, true);
    out.set(c, at + 4);
    at += 4 + c.length;
  }
  return out;
}

/**
 * Samples per channel at 48 kHz in an Opus packet, from its TOC byte (RFC 6716 §3.1).
 *
 * @throws {RangeError} an empty packet, or code 3 without its frame count byte
 */
export function opusTocSamples(packet: Uint8Array): number {
  const toc = packet[0];
  if (toc === undefined) throw new RangeError("Cannot read an empty Opus packet");
  const config = toc >> 3;
  let frame: number;
  if (config < 12) frame = [480, 960, 1920, 2880][config & 3]!; // SILK
  else if (config < 16) frame = config & 1 ? 960 : 480; // hybrid
  else frame = [120, 240, 480, 960][config & 3]!; // CELT
  const code = toc & 3;
  if (code === 0) return frame;
  if (code !== 3) return 2 * frame;
  const count = packet[1];
  if (count === undefined) throw new RangeError("Opus packet code 3 without a frame count");
  return (count & 0x3f) * frame;
}

/** Turns Opus packets into the pages of one Ogg/Opus stream; see the module doc. */
export class OggOpusMuxer {
  readonly #ogg: OggStreamWriter;
  readonly #options: OggOpusMuxerOptions;
  #granule = 0n;

  /** A muxer; nothing is written until {@linkcode headers}. */
  constructor(options: OggOpusMuxerOptions = {}) {
    this.#options = options;
    this.#ogg = new OggStreamWriter(
      options.serial ?? crypto.getRandomValues(new Uint32Array(1))[0]!,
    );
  }

  /** The stream's serial number. */
  get serial(): number {
    return this.#ogg.serial;
  }

  /** Granule position after the last packet written (samples incl. pre-skip). */
  get granule(): bigint {
    return this.#granule;
  }

  /** The two header pages (OpusHead with BOS, then OpusTags). */
  headers(): Uint8Array[] {
    const o = this.#options;
    return [
      this.#ogg.page(
        [opusHead(o.channels ?? 2, o.preSkip ?? 312, o.inputRate ?? 48_000)],
        0n,
        OGG_BOS,
      ),
      this.#ogg.page([opusTags(o.vendor ?? "soundsock", o.tags)], 0n),
    ];
  }

  /**
   * Audio pages holding `packets` (whole packets on each page, at most maxPageSamples of audio
   * and 255 lacing values a page). `eos` marks the last page as the end of the stream.
   */
  pages(packets: readonly Uint8Array[], eos = false): Uint8Array[] {
    const maxSamples = this.#options.maxPageSamples ?? 4800;
    const out: Uint8Array[] = [];
    let batch: Uint8Array[] = [];
    let segments = 0;
    let samples = 0;
    const flush = (last: boolean) => {
      if (batch.length === 0) return;
      this.#granule += BigInt(samples);
      out.push(this.#ogg.page(batch, this.#granule, last && eos ? OGG_EOS : 0));
      batch = [];
      segments = 0;
      samples = 0;
    };
    for (const p of packets) {
      const n = opusTocSamples(p);
      const s = oggSegments(p.length);
      if (batch.length > 0 && (segments + s > OGG_MAX_SEGMENTS || samples + n > maxSamples)) {
        flush(false);
      }
      batch.push(p);
      segments += s;
      samples += n;
    }
    flush(true);
    return out;
  }
}
