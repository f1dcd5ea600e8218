/**
 * The station encoder: one continuous 48 kHz stereo stream (every song already resampled) in,
 * DATA payloads out. One encoder serves the whole run, so song changes are gapless: a 20 ms
 * frame may hold the end of one song and the start of the next.
 *
 * - `opus`: 20 ms Opus frames (RFC 6716) at the configured bitrate, several per payload, laid
 *   out as repeated `[u16 big-endian length][Opus packet]` (docs/PROTOCOL.md §4), at most
 *   `maxPacketMs` of audio and `maxPayload` bytes (a frame is capped at `maxPayload − 2`).
 * - `pcm`: interleaved s16le stereo, whole sample frames, at most `maxPayload` bytes and
 *   `maxPacketMs` of audio per payload.
 *
 * Song boundaries are carried as marks: a mark pushed with a block belongs to the payload that
 * holds the block's first sample (that payload gets the SONG_START flag).
 *
 * @module
 */

import { floatToS16, OpusEncoder } from "../codec/mod.ts";
import { littleEndianBytes } from "../media/packetizer.ts";
import { STATION_CHANNELS, STATION_RATE } from "./clock.ts";

/** The station's codec. */
export type RadioCodec = "opus" | "pcm";
/** Samples per channel in one Opus frame (20 ms at 48 kHz). */
export const OPUS_FRAME_SAMPLES = 960;
/** Duration of one Opus frame in ms. */
export const STATION_FRAME_MS = 20;
/** Bytes of the length prefix before each Opus packet in a payload. */
export const OPUS_LENGTH_BYTES = 2;

/** Options of {@linkcode StationEncoder.create}. */
export interface StationEncoderOptions {
  /** `opus` or `pcm` (s16le). */
  codec: RadioCodec;
  /** Largest DATA payload in bytes. */
  maxPayload: number;
  /** Most audio in one payload (ms): 60 on UDP, 100 on TLS. */
  maxPacketMs: number;
  /**
   * Opus bitrate in bit/s.
   * @default {128000}
   */
  bitrate?: number;
}

/** One DATA payload of the station. */
export interface EncodedPacket<M> {
  /** Station sample frame of the payload's first sample. */
  startSample: number;
  /** Sample frames (per channel) in the payload. */
  samples: number;
  /** Opus frames with length prefixes, or s16le PCM. */
  payload: Uint8Array;
  /** Marks whose position falls inside this payload, in order. */
  marks: M[];
}

/** Encodes the station stream; see the module doc. */
export class StationEncoder<M> implements Disposable {
  /** The codec. */
  readonly codec: RadioCodec;
  /** Sample frames per unit: an Opus frame (960), or a whole PCM payload. */
  readonly unitSamples: number;
  /** Units per payload at most. */
  readonly unitsPerPacket: number;
  readonly #maxPayload: number;
  readonly #opus: OpusEncoder | undefined;
  /** The unit being filled, interleaved stereo float. */
  readonly #unit: Float32Array;
  #fill = 0;
  /** Samples pushed so far (the position of the next mark). */
  #pushed = 0;
  /** Samples in finished payloads (the station clock). */
  #encoded = 0;
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #partSamples = 0;
  #marks: { at: number; mark: M }[] = [];

  private constructor(options: StationEncoderOptions, opus: OpusEncoder | undefined) {
    this.codec = options.codec;
    this.#maxPayload = options.maxPayload;
    this.#opus = opus;
    const maxSamples = Math.floor(options.maxPacketMs * STATION_RATE / 1000);
    if (opus) {
      this.unitSamples = OPUS_FRAME_SAMPLES;
      this.unitsPerPacket = Math.max(1, Math.floor(maxSamples / OPUS_FRAME_SAMPLES));
    } else {
      this.unitSamples = Math.max(
        1,
        Math.min(maxSamples, Math.floor(options.maxPayload / (2 * STATION_CHANNELS))),
      );
      this.unitsPerPacket = 1;
    }
    this.#unit = new Float32Array(this.unitSamples * STATION_CHANNELS);
  }

  /**
   * Creates an encoder.
   *
   * @throws {CodecLibraryError} codec `opus` and libopus is missing
   * @throws {RangeError} a payload too small for one frame, or a bad bitrate
   */
  static async create<M>(options: StationEncoderOptions): Promise<StationEncoder<M>> {
    if (options.codec === "pcm") {
      if (options.maxPayload < 2 * STATION_CHANNELS) {
        throw new RangeError(`A ${options.maxPayload}-byte payload cannot hold a PCM frame`);
      }
      return new StationEncoder<M>(options, undefined);
    }
    if (options.maxPayload < 64) {
      throw new RangeError(`A ${options.maxPayload}-byte payload is too small for Opus frames`);
    }
    const opus = await OpusEncoder.create({
      channels: STATION_CHANNELS,
      frameMs: STATION_FRAME_MS,
      bitrate: options.bitrate ?? 128_000,
    });
    return new StationEncoder<M>(options, opus);
  }

  /** Encoder lookahead in samples (decoded audio lags its timestamps by this); 0 for PCM. */
  get lookahead(): number {
    return this.#opus?.lookahead ?? 0;
  }

  /** Sample frames in finished payloads: the station clock. */
  get samplesEncoded(): number {
    return this.#encoded;
  }

  /** Sample frames pushed so far (encoded + waiting for a whole unit). */
  get samplesPushed(): number {
    return this.#pushed;
  }

  /**
   * Adds interleaved 48 kHz stereo float samples; `mark` (a song start) is placed at the first
   * of them. Returns the payloads completed by this block.
   */
  push(pcm: Float32Array, mark?: M): EncodedPacket<M>[] {
    if (pcm.length % STATION_CHANNELS !== 0) {
      throw new RangeError(`Station input must be whole stereo frames, got ${pcm.length} samples`);
    }
    if (mark !== undefined) this.#marks.push({ at: this.#pushed, mark });
    const out: EncodedPacket<M>[] = [];
    let at = 0;
    while (at < pcm.length) {
      const n = Math.min(pcm.length - at, this.#unit.length - this.#fill);
      this.#unit.set(pcm.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === this.#unit.length) {
        this.#fill = 0;
        this.#addUnit(out);
      }
    }
    this.#pushed += pcm.length / STATION_CHANNELS;
    return out;
  }

  #addUnit(out: EncodedPacket<M>[]): void {
    if (this.#opus) {
      const frame = this.#opus.encode(
        this.#unit,
        Math.min(1275, this.#maxPayload - OPUS_LENGTH_BYTES),
      );
      if (this.#partBytes + OPUS_LENGTH_BYTES + frame.length > this.#maxPayload) this.#finish(out);
      const prefix = new Uint8Array(OPUS_LENGTH_BYTES);
      new DataView(prefix.buffer).setUint16(0, frame.length);
      this.#parts.push(prefix, frame);
      this.#partBytes += OPUS_LENGTH_BYTES + frame.length;
    } else {
      const bytes = littleEndianBytes(floatToS16(this.#unit));
      this.#parts.push(bytes.slice());
      this.#partBytes += bytes.length;
    }
    this.#partSamples += this.unitSamples;
    if (this.#partSamples >= this.unitSamples * this.unitsPerPacket) this.#finish(out);
  }

  #finish(out: EncodedPacket<M>[]): void {
    if (this.#partSamples === 0) return;
    const payload = this.#parts.length === 1
      ? this.#parts[0]!
      : _concat(this.#parts, this.#partBytes);
    const start = this.#encoded;
    const end = start + this.#partSamples;
    const marks: M[] = [];
    while (this.#marks.length > 0 && this.#marks[0]!.at < end) {
      marks.push(this.#marks.shift()!.mark);
    }
    out.push({ startSample: start, samples: this.#partSamples, payload, marks });
    this.#encoded = end;
    this.#parts = [];
    this.#partBytes = 0;
    this.#partSamples = 0;
  }

  /** Frees the Opus encoder. A no-op the second time. */
  close(): void {
    this.#opus?.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function _concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Splits an Opus station payload into its Opus packets (`[u16 BE length][packet]`…).
 *
 * @throws {RangeError} a length runs past the end, or a zero length (the payload is corrupt)
 */
export function splitOpusPayload(payload: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  while (at < payload.length) {
    if (at + OPUS_LENGTH_BYTES > payload.length) {
      throw new RangeError(`Cannot split Opus payload: 1 stray byte at offset ${at}`);
    }
    const n = view.getUint16(at);
    at += OPUS_LENGTH_BYTES;
    if (n === 0 || at + n > payload.length) {
      throw new RangeError(
        `Cannot split Opus payload: packet of ${n} bytes at offset ${at - 2} ` +
          `(payload is ${payload.length} bytes)`,
      );
    }
    out.push(payload.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Opus frames in a station payload (walks the length prefixes; stops at a bad one). */
export function opusFrameCount(payload: Uint8Array): number {
  let n = 0;
  for (let at = 0; at + OPUS_LENGTH_BYTES <= payload.length; n++) {
    const len = (payload[at]! << 8) | payload[at + 1]!;
    if (len === 0) break;
    at += OPUS_LENGTH_BYTES + len;
    if (at > payload.length) break;
  }
  return n;
}
