/**
 * MPEG audio (MP3) frame parsing in pure TypeScript — no FFI.
 *
 * Used by the MP3 decoder (which feeds miniaudio exactly one whole frame at a time, so decoding
 * does not depend on how bytes arrived) and by the UDP server (whole frames per datagram, media
 * timestamps from sample counts).
 *
 * Handles: ID3v2 tags at the start (skipped), ID3v1 / APE / Lyrics tags and other junk (skipped
 * by resynchronising), and the Xing/Info/VBRI frame with the LAME tag (encoder delay, padding).
 *
 * @module
 */

/** One MPEG audio frame, located in the stream. */
export interface Mp3Frame {
  /** Byte offset of the frame header from the start of the stream. */
  offset: number;
  /** Frame length in bytes (header included). */
  length: number;
  /** Sample rate in Hz. */
  sampleRate: number;
  /** 1 (mono) or 2. */
  channels: number;
  /** Samples per channel this frame decodes to (384, 576 or 1152). */
  samples: number;
  /** Bitrate in kbit/s. */
  bitrateKbps: number;
}

/** What the Xing/Info (and LAME) tag of a stream says. */
export interface Mp3Tag {
  /** "Xing" (VBR), "Info" (CBR) or "VBRI" (Fraunhofer). */
  kind: "Xing" | "Info" | "VBRI";
  /** The tag frame itself: it decodes to silence and is not part of the audio. */
  frame: Mp3Frame;
  /** Number of audio frames the tag announces, if it does. */
  frameCount: number | undefined;
  /** Encoder name from the LAME extension, e.g. "LAME3.100", if present. */
  encoder: string | undefined;
  /** Encoder delay in samples (LAME tag), 0 if unknown. */
  delay: number;
  /** Encoder padding at the end in samples (LAME tag), 0 if unknown. */
  padding: number;
  /** True when a LAME/Lavf/Lavc tag gave delay and padding (and so trimming applies). */
  hasLameTag: boolean;
}

/** Result of {@linkcode scanMp3}. */
export interface Mp3Scan {
  /** Audio frames in stream order (the Xing/Info frame is not included). */
  frames: Mp3Frame[];
  /** Sample rate of the first frame, Hz. */
  sampleRate: number;
  /** Channels of the first frame. */
  channels: number;
  /** Samples per channel per frame. */
  samplesPerFrame: number;
  /** The Xing/Info/VBRI tag, if any. */
  tag: Mp3Tag | undefined;
  /** Samples to drop at the start of decoded output (encoder delay + 529 decoder delay). */
  trimStart: number;
  /** Decoded output ends at this sample index (before trimStart is applied); Infinity if open. */
  endSample: number;
  /** Sample frames a conforming decoder outputs after trimming (what ffmpeg reports). */
  totalSamples: number;
  /** Duration of totalSamples in milliseconds. */
  durationMs: number;
  /** Bytes of ID3v2 tags at the start. */
  id3v2Bytes: number;
}

/** Samples of delay of the MP3 decoder's synthesis filter bank; ffmpeg uses 528 + 1. */
export const DECODER_DELAY = 529;

const BITRATES_V1 = [
  // layer 1, 2, 3 (index 0 = free format, 15 = bad)
  [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
];
const BITRATES_V2 = [
  [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];
const RATES = [44100, 48000, 32000];

/** A parsed 4-byte frame header. */
interface _Header extends Omit<Mp3Frame, "offset"> {
  /** 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5 (the raw version bits). */
  version: number;
  layer: number;
  /** Bytes of Layer III side information (for locating the Xing tag). */
  sideInfo: number;
  crc: boolean;
}

/** Parses the header at `bytes[i]`, or undefined if it is not a valid (non-free-format) one. */
export function _parseHeader(bytes: Uint8Array, i: number): _Header | undefined {
  if (i + 4 > bytes.length) return undefined;
  const b1 = bytes[i + 1]!, b2 = bytes[i + 2]!, b3 = bytes[i + 3]!;
  if (bytes[i] !== 0xff || (b1 & 0xe0) !== 0xe0) return undefined;
  const version = (b1 >> 3) & 3; // 0 = 2.5, 1 = reserved, 2 = MPEG-2, 3 = MPEG-1
  const layerBits = (b1 >> 1) & 3; // 1 = L3, 2 = L2, 3 = L1
  const brIndex = b2 >> 4;
  const srIndex = (b2 >> 2) & 3;
  if (version === 1 || layerBits === 0 || brIndex === 0 || brIndex === 15 || srIndex === 3) {
    return undefined;
  }
  const layer = 4 - layerBits;
  const mpeg1 = version === 3;
  const bitrateKbps = (mpeg1 ? BITRATES_V1 : BITRATES_V2)[layer - 1]![brIndex]!;
  const sampleRate = RATES[srIndex]! >> (mpeg1 ? 0 : version === 2 ? 1 : 2);
  const pad = (b2 >> 1) & 1;
  const channels = (b3 >> 6) === 3 ? 1 : 2;
  let length: number, samples: number;
  if (layer === 1) {
    length = (Math.floor(12 * bitrateKbps * 1000 / sampleRate) + pad) * 4;
    samples = 384;
  } else {
    const lsf = layer === 3 && !mpeg1;
    samples = lsf ? 576 : 1152;
    length = Math.floor((lsf ? 72 : 144) * bitrateKbps * 1000 / sampleRate) + pad;
  }
  const sideInfo = mpeg1 ? (channels === 1 ? 17 : 32) : (channels === 1 ? 9 : 17);
  return {
    length,
    sampleRate,
    channels,
    samples,
    bitrateKbps,
    version,
    layer,
    sideInfo,
    crc: (b1 & 1) === 0,
  };
}

/** Same stream? (version, layer and sample rate must not change between frames) */
function _compatible(a: _Header, b: _Header): boolean {
  return a.version === b.version && a.layer === b.layer && a.sampleRate === b.sampleRate;
}

function _ascii(bytes: Uint8Array, i: number, n: number): string {
  return i + n <= bytes.length ? String.fromCharCode(...bytes.subarray(i, i + n)) : "";
}

/** Size of an ID3v2 tag at `bytes[i]` (header, body, footer), or 0 if there is none. */
export function _id3v2Size(bytes: Uint8Array, i: number): number {
  if (_ascii(bytes, i, 3) !== "ID3" || i + 10 > bytes.length) return 0;
  const s = (bytes[i + 6]! << 21) | (bytes[i + 7]! << 14) | (bytes[i + 8]! << 7) | bytes[i + 9]!;
  return 10 + s + ((bytes[i + 5]! & 0x10) ? 10 : 0);
}

/** Does a known trailing tag (or another ID3v2) start at `bytes[i]`? */
function _tagAt(bytes: Uint8Array, i: number): boolean {
  const s = _ascii(bytes, i, 3);
  return s === "TAG" || s === "ID3" || _ascii(bytes, i, 8) === "APETAGEX" ||
    _ascii(bytes, i, 6) === "LYRICS";
}

/** Reads the Xing/Info/VBRI tag from a frame's bytes, if it is a tag frame. */
export function _parseTag(frame: Uint8Array, h: { sideInfo: number }) {
  const be32 = (i: number) =>
    ((frame[i]! << 24) | (frame[i + 1]! << 16) | (frame[i + 2]! << 8) | frame[i + 3]!) >>> 0;
  const x = 4 + h.sideInfo;
  const kind = _ascii(frame, x, 4);
  if (kind === "Xing" || kind === "Info") {
    const flags = be32(x + 4);
    let p = x + 8;
    let frameCount: number | undefined;
    if (flags & 1) {
      frameCount = be32(p);
      p += 4;
    }
    if (flags & 2) p += 4; // byte count
    if (flags & 4) p += 100; // seek table
    if (flags & 8) p += 4; // quality
    const encoder = _ascii(frame, p, 9).replace(/\0.*$/s, "");
    const lame = ["LAME", "Lavf", "Lavc"].includes(encoder.slice(0, 4)) && p + 24 <= frame.length;
    let delay = 0, padding = 0;
    if (lame) {
      const v = (frame[p + 21]! << 16) | (frame[p + 22]! << 8) | frame[p + 23]!;
      delay = v >> 12;
      padding = v & 0xfff;
    }
    return {
      kind,
      frameCount,
      encoder: encoder || undefined,
      delay,
      padding,
      hasLameTag: lame,
    } as const;
  }
  if (_ascii(frame, 36, 4) === "VBRI") {
    return {
      kind: "VBRI",
      frameCount: be32(36 + 14),
      encoder: undefined,
      delay: 0,
      padding: 0,
      hasLameTag: false,
    } as const;
  }
  return undefined;
}

/**
 * Incremental MP3 frame splitter: push bytes as they arrive, get whole frames back.
 * A frame is only returned once the next frame's header (or the end of the stream) confirms it,
 * so pushing the same stream in any chunk sizes yields exactly the same frames.
 */
export class Mp3FrameSplitter {
  #buf = new Uint8Array(0);
  #start = 0; // read position in #buf
  #base = 0; // stream offset of #buf[0]
  #skip = 0; // bytes of an ID3v2 tag still to skip
  #atStart = true; // still looking for leading ID3v2 tags
  #ref: _Header | undefined;
  #ended = false;
  #seenFirst = false;
  /** Bytes of ID3v2 tags skipped at the start. */
  id3v2Bytes = 0;
  /** Bytes skipped while resynchronising (junk, trailing tags). */
  junkBytes = 0;
  /** The Xing/Info/VBRI tag, once the first frame was seen. */
  tag: Mp3Tag | undefined;

  /** Adds bytes; returns the frames completed by them (the tag frame is not returned). */
  push(bytes: Uint8Array): { frame: Mp3Frame; data: Uint8Array }[] {
    if (this.#ended) throw new Error("Mp3FrameSplitter: push after end");
    const rest = this.#buf.length - this.#start;
    const next = new Uint8Array(rest + bytes.length);
    next.set(this.#buf.subarray(this.#start));
    next.set(bytes, rest);
    this.#base += this.#start;
    this.#buf = next;
    this.#start = 0;
    return this.#drain();
  }

  /** Marks the end of the stream; returns the last frames. */
  end(): { frame: Mp3Frame; data: Uint8Array }[] {
    this.#ended = true;
    return this.#drain();
  }

  /**
   * Returns a frame that is whole in the buffer but not yet confirmed by a following header,
   * without ending the stream: before a known gap (a lost packet) the frames before it are
   * complete, and must be decoded before what comes after the gap.
   */
  flush(): { frame: Mp3Frame; data: Uint8Array }[] {
    return this.#drain(true);
  }

  #drain(flush = false): { frame: Mp3Frame; data: Uint8Array }[] {
    const out: { frame: Mp3Frame; data: Uint8Array }[] = [];
    const b = this.#buf;
    let i = this.#start;
    for (;;) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, b.length - i);
        this.#skip -= n;
        i += n;
        if (this.#skip > 0) break;
      }
      if (this.#atStart) {
        if (b.length - i < 10 && !this.#ended) break;
        const id3 = _id3v2Size(b, i);
        if (id3 > 0) {
          this.id3v2Bytes += id3;
          this.#skip = id3;
          continue;
        }
        this.#atStart = false;
      }
      if (b.length - i < 4) {
        if (this.#ended) {
          this.junkBytes += b.length - i;
          i = b.length;
        }
        break;
      }
      const h = _parseHeader(b, i);
      if (!h || (this.#ref && !_compatible(this.#ref, h))) {
        i++;
        this.junkBytes++;
        continue;
      }
      const end = i + h.length;
      // Confirm the frame by the header that follows it (or the end / a trailing tag).
      if (end + 4 > b.length && !this.#ended && !(flush && end === b.length)) break;
      let ok: boolean;
      if (end === b.length) ok = true;
      else if (end > b.length) ok = false;
      else {
        const nh = _parseHeader(b, end);
        ok = nh !== undefined ? _compatible(h, nh) : (this.#seenFirst && _tagAt(b, end));
        if (!ok && end + 4 > b.length) ok = this.#seenFirst; // ended: last few bytes are junk
      }
      if (!ok) {
        i++;
        this.junkBytes++;
        continue;
      }
      const frame: Mp3Frame = {
        offset: this.#base + i,
        length: h.length,
        sampleRate: h.sampleRate,
        channels: h.channels,
        samples: h.samples,
        bitrateKbps: h.bitrateKbps,
      };
      const data = b.subarray(i, end);
      i = end;
      this.#ref ??= h;
      if (!this.#seenFirst) {
        this.#seenFirst = true;
        const t = h.layer === 3 ? _parseTag(data, h) : undefined;
        if (t) {
          this.tag = { ...t, frame };
          continue;
        }
      }
      out.push({ frame, data });
    }
    this.#start = i;
    return out;
  }
}

/** Trimming implied by a tag, as ffmpeg applies it: [trimStart, endSample) of decoded samples. */
export function mp3Trim(
  tag: Mp3Tag | undefined,
  samplesPerFrame: number,
): { trimStart: number; endSample: number } {
  if (!tag?.hasLameTag) return { trimStart: 0, endSample: Infinity };
  const trimStart = tag.delay + DECODER_DELAY;
  const endSample = tag.frameCount === undefined
    ? Infinity
    : tag.frameCount * samplesPerFrame - tag.padding + DECODER_DELAY;
  return { trimStart, endSample };
}

/**
 * Scans a whole MP3 stream: frames, format, tag, and the exact number of output samples.
 * Returns `undefined` when no MPEG audio frame is found (not an MP3).
 */
export function scanMp3(bytes: Uint8Array): Mp3Scan | undefined {
  const s = new Mp3FrameSplitter();
  const frames = [...s.push(bytes), ...s.end()].map((f) => f.frame);
  const first = frames[0] ?? s.tag?.frame;
  if (!first) return undefined;
  const spf = first.samples;
  const { trimStart, endSample } = mp3Trim(s.tag, spf);
  const decoded = frames.reduce((n, f) => n + f.samples, 0);
  const totalSamples = Math.max(0, Math.min(decoded, endSample) - trimStart);
  return {
    frames,
    sampleRate: first.sampleRate,
    channels: first.channels,
    samplesPerFrame: spf,
    tag: s.tag,
    trimStart,
    endSample,
    totalSamples,
    durationMs: totalSamples * 1000 / first.sampleRate,
    id3v2Bytes: s.id3v2Bytes,
  };
}

/**
 * Samples per channel held by `payload`, a run of whole MP3 frames (a packet as
 * lib/media/packetizer.ts cuts them): the sum of each frame's samples, stopping at the first
 * byte that is not a frame header.
 */
export function mp3PayloadSamples(payload: Uint8Array): number {
  let samples = 0;
  for (let i = 0; i < payload.length;) {
    const h = _parseHeader(payload, i);
    if (!h || h.length <= 0) break;
    samples += h.samples;
    i += h.length;
  }
  return samples;
}
