/**
 * The receiving end of a media stream: DATA payloads in, PCM out to a sink (device, WAV file,
 * stdout). One playout serves a whole connection: each STREAM_INFO starts a new stream (a new
 * song on the radio) with a fresh decoder, and every stream is converted to the format the
 * output was opened with, so a radio recording stays one valid WAV file.
 *
 * @module
 */

import { decodeBytes } from "../audio/decode.ts";
import { openPushDecoder, type PushDecoder } from "../audio/push_decoder.ts";
import type { StreamInfo } from "../wire/messages.ts";
import { PcmConverter, type PcmFormat } from "./pcm_convert.ts";

/** Where PCM goes. */
export interface PcmWriter {
  /** Writes interleaved samples in the format the writer was opened with; may wait (backpressure). */
  write(pcm: Int16Array): Promise<void>;
}

/** Options for {@linkcode MediaPlayout}. */
export interface MediaPlayoutOptions {
  /** Opens the output once, with the first stream's format. */
  openOutput: (format: PcmFormat) => Promise<PcmWriter>;
  /**
   * Largest FLAC file decoded in memory (FLAC cannot be decoded while it downloads here).
   * @default {268435456}
   */
  maxBufferedBytes?: number;
}

interface ActiveStream {
  info: StreamInfo;
  decoder: PushDecoder | undefined;
  /** FLAC bytes gathered until the end. */
  buffered: Uint8Array[] | undefined;
  bufferedBytes: number;
  /** Frames still to drop from the start (MP3 priming). */
  skip: number;
  /** Frames still allowed before the end (drops MP3 padding); Infinity if unknown. */
  remaining: number;
  converter: PcmConverter | undefined;
}

/** Decodes stream payloads and writes PCM to one output. */
export class MediaPlayout implements Disposable {
  readonly #options: MediaPlayoutOptions;
  #output: PcmWriter | undefined;
  #format: PcmFormat | undefined;
  #stream: ActiveStream | undefined;
  /** Sample frames written to the output. */
  framesWritten = 0;
  /** Sample frames of silence written to conceal lost PCM packets. */
  framesConcealed = 0;

  /** Creates a playout; nothing is opened until the first stream starts. */
  constructor(options: MediaPlayoutOptions) {
    this.#options = options;
  }

  /** Format of the output, once opened. */
  get format(): PcmFormat | undefined {
    return this.#format;
  }

  /**
   * Starts a new stream described by `info`, finishing the previous one.
   *
   * @param fromStart whether DATA begins at the song's start (then MP3 priming is trimmed).
   */
  async startStream(info: StreamInfo, fromStart = true): Promise<void> {
    await this.finishStream();
    if (!this.#output) {
      this.#format = { sampleRate: info.sampleRate, channels: info.channels };
      this.#output = await this.#options.openOutput(this.#format);
    }
    const codec = info.codec;
    const decoder = codec === "mp3"
      ? await openPushDecoder("mp3", { path: info.title })
      : codec === "wav"
      ? await openPushDecoder("wav", { path: info.title })
      : undefined;
    const known = fromStart && codec === "mp3" && info.frames !== undefined;
    this.#stream = {
      info,
      decoder,
      buffered: codec === "flac" ? [] : undefined,
      bufferedBytes: 0,
      skip: fromStart && codec === "mp3" ? info.skip ?? 0 : 0,
      remaining: known ? info.frames! : Infinity,
      converter: undefined,
    };
  }

  /** Decodes one DATA payload and writes what it yields. */
  async media(payload: Uint8Array): Promise<void> {
    const s = this.#stream;
    if (!s) return; // DATA before any STREAM_INFO (radio joined mid-burst): nothing to decode with
    if (s.buffered) {
      const max = this.#options.maxBufferedBytes ?? 256 * 1024 * 1024;
      if (s.bufferedBytes + payload.length > max) {
        throw new Error(`Cannot play "${s.info.title}": FLAC larger than ${max} bytes`);
      }
      s.buffered.push(payload.slice());
      s.bufferedBytes += payload.length;
      return;
    }
    if (s.decoder) {
      s.decoder.push(payload);
      await this.#drain(s);
      return;
    }
    // pcm_s16le: whole sample frames, little-endian.
    await this.#write(s, pcmFromLittleEndian(payload));
  }

  /** Conceals a lost packet of `durationUs`: silence for PCM; MP3 simply continues. */
  async gap(durationUs: number): Promise<void> {
    const s = this.#stream;
    if (!s || s.info.codec !== "pcm_s16le") return;
    const frames = Math.round(durationUs * s.info.sampleRate / 1e6);
    this.framesConcealed += frames;
    await this.#write(s, new Int16Array(frames * s.info.channels));
  }

  /** Ends the current stream: flushes the decoder (and decodes a buffered FLAC). */
  async finishStream(): Promise<void> {
    const s = this.#stream;
    if (!s) return;
    this.#stream = undefined;
    try {
      if (s.buffered) {
        const bytes = new Uint8Array(s.bufferedBytes);
        let at = 0;
        for (const b of s.buffered) {
          bytes.set(b, at);
          at += b.length;
        }
        const decoded = await decodeBytes(bytes, { path: s.info.title });
        await this.#write(s, decoded.pcm);
      } else if (s.decoder) {
        s.decoder.end();
        await this.#drain(s);
      }
    } finally {
      s.decoder?.close();
    }
  }

  async #drain(s: ActiveStream): Promise<void> {
    for (let pcm = s.decoder!.read(); pcm; pcm = s.decoder!.read()) await this.#write(s, pcm);
  }

  async #write(s: ActiveStream, pcm: Int16Array): Promise<void> {
    const ch = s.decoder?.channels ?? s.info.channels;
    let frames = pcm.length / ch;
    if (s.skip > 0) {
      const drop = Math.min(s.skip, frames);
      s.skip -= drop;
      pcm = pcm.subarray(drop * ch);
      frames -= drop;
    }
    if (frames > s.remaining) {
      pcm = pcm.subarray(0, s.remaining * ch);
      frames = s.remaining;
    }
    s.remaining -= frames;
    if (frames === 0) return;
    const rate = s.decoder?.sampleRate ?? s.info.sampleRate;
    if (!s.converter || s.converter.from.sampleRate !== rate || s.converter.from.channels !== ch) {
      s.converter = new PcmConverter({ sampleRate: rate, channels: ch }, this.#format!);
    }
    const out = s.converter.convert(pcm);
    this.framesWritten += out.length / this.#format!.channels;
    await this.#output!.write(out);
  }

  /** Releases the decoder without flushing. */
  [Symbol.dispose](): void {
    this.#stream?.decoder?.close();
    this.#stream = undefined;
  }
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Interprets s16le bytes as samples (copying, so the result is aligned and owned). */
export function pcmFromLittleEndian(bytes: Uint8Array): Int16Array {
  const n = bytes.length >> 1;
  if (LITTLE_ENDIAN) {
    const out = new Int16Array(n);
    new Uint8Array(out.buffer).set(bytes.subarray(0, n * 2));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Int16Array.from({ length: n }, (_, i) => view.getInt16(i * 2, true));
}
