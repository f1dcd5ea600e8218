/**
 * Push decoders: feed encoded bytes as they arrive (network, file chunks), pull 16-bit PCM.
 *
 * MP3: our TypeScript frame splitter hands miniaudio's low-level frame decoder
 * (`ma_dr_mp3dec_decode_frame`) exactly one whole, confirmed frame per call. Feeding it an
 * arbitrary growing buffer instead loses frames when a call sees a partial frame; with whole
 * frames the output cannot depend on chunk sizes, so push decoding is bit-identical to decoding
 * the whole file. The Xing/Info frame is dropped and the LAME encoder delay / padding trimmed
 * as ffmpeg does, so output matches `ffmpeg -f s16le` sample for sample.
 *
 * WAV: the header is parsed in TypeScript and the 16-bit PCM passes through.
 *
 * @module
 */

import { _decodeError } from "./errors.ts";
import { _loadedLib, _track, _untrack, type AudioLib, loadAudioLib } from "./ffi.ts";
import { Mp3FrameSplitter, mp3Trim } from "./mp3_frames.ts";
import { parseWavHeader, type WavHeader } from "./wav.ts";

/** Common interface of the push decoders. */
export interface PushDecoder extends Disposable {
  /** "mp3" or "wav". */
  readonly codec: "mp3" | "wav";
  /** Sample rate in Hz, once known (after the first frame / the header). */
  readonly sampleRate: number | undefined;
  /** Channel count, once known. */
  readonly channels: number | undefined;
  /** Feeds encoded bytes (any chunk size). Throws AudioDecodeError on invalid data. */
  push(bytes: Uint8Array): void;
  /** Marks the end of input. Throws AudioDecodeError if no audio was found at all. */
  end(): void;
  /** Takes all PCM decoded so far (interleaved), or null when none is waiting. */
  read(): Int16Array | null;
  /** True once end() was called and all PCM has been read. */
  readonly done: boolean;
  /** Sample frames output so far (read or waiting). */
  readonly framesOut: number;
  /** Releases native state. Idempotent. */
  close(): void;
  /**
   * MP3: the input skips `samples` (per channel) of lost frames. The frames before the gap are
   * decoded, then the decoder restarts empty, so frames after the gap whose bit reservoir
   * reaches into the lost bytes are dropped (counted by {@linkcode takeDropped}) instead of
   * being decoded from stale data into loud garbage. Returns how many of those samples are
   * inside the output (the trimmed priming and padding are not).
   */
  lost?(samples: number): number;
  /** MP3: samples dropped since the last call (frames undecodable after a gap). */
  takeDropped?(): number;
}

/** Options of the push decoders. */
export interface PushDecoderOptions {
  /**
   * Name used in error messages (`Cannot decode "<path>": ...`).
   * @default undefined (messages say "audio data")
   */
  path?: string;
}

/** Concatenates Int16Array chunks. */
export function _concat(chunks: Int16Array[]): Int16Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** The decoded-PCM queue both push decoders share: `emit` in, `read` out. */
abstract class _PcmQueue {
  #out: Int16Array[] = [];
  #framesOut = 0;
  /** Set by end(). */
  protected ended = false;

  /** Queues decoded PCM of `frames` sample frames. */
  protected emit(pcm: Int16Array, frames: number): void {
    this.#framesOut += frames;
    this.#out.push(pcm);
  }

  /** Takes all PCM decoded so far (interleaved), or null when none is waiting. */
  read(): Int16Array | null {
    if (this.#out.length === 0) return null;
    const pcm = _concat(this.#out);
    this.#out = [];
    return pcm;
  }

  /** True after end() once everything was read. */
  get done(): boolean {
    return this.ended && this.#out.length === 0;
  }

  /** Sample frames output so far. */
  get framesOut(): number {
    return this.#framesOut;
  }
}

/** MP3 push decoder (see the module comment). Create with {@linkcode Mp3PushDecoder.open}. */
export class Mp3PushDecoder extends _PcmQueue implements PushDecoder {
  /** Always "mp3". */
  readonly codec = "mp3" as const;
  #lib: AudioLib;
  #dec: Deno.PointerValue;
  #split = new Mp3FrameSplitter();
  #path: string | undefined;
  #pcm = new Int16Array(1152 * 2);
  #info = new Int32Array(5);
  #decoded = 0; // samples per channel decoded, before trimming
  #trim: { trimStart: number; endSample: number } | undefined;
  #closed = false;
  /** Sample rate of the first frame. */
  sampleRate: number | undefined;
  /** Channels of the first frame (later frames are converted to it). */
  channels: number | undefined;
  /** MPEG frames decoded. */
  mpegFrames = 0;

  /** Loads the native library if needed and creates a decoder. */
  static async open(options: PushDecoderOptions = {}): Promise<Mp3PushDecoder> {
    return new Mp3PushDecoder(await loadAudioLib(), options);
  }

  /** Prefer {@linkcode Mp3PushDecoder.open}; this needs the loaded library. */
  constructor(lib: AudioLib | undefined = _loadedLib(), options: PushDecoderOptions = {}) {
    super();
    if (!lib) throw new Error("Mp3PushDecoder: use Mp3PushDecoder.open()");
    this.#lib = lib;
    this.#dec = lib.ss_mp3_new();
    this.#path = options.path;
    _track(this);
  }

  /** Feeds MP3 bytes. */
  push(bytes: Uint8Array): void {
    this.#check();
    if (this.ended) throw new Error("Mp3PushDecoder: push after end");
    this.#decode(this.#split.push(bytes));
  }

  /** After a gap: frames dropped because their reservoir was lost (until one decodes). */
  #afterGap = false;
  #dropped = 0;

  /** See {@linkcode PushDecoder.lost}. */
  lost(samples: number): number {
    this.#check();
    this.#decode(this.#split.flush());
    this.#lib.ss_mp3_free(this.#dec);
    this.#dec = this.#lib.ss_mp3_new();
    this.#afterGap = true;
    return this.#advance(Math.max(0, Math.round(samples)));
  }

  /** See {@linkcode PushDecoder.takeDropped}. */
  takeDropped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }

  /** Counts `n` samples that were not decoded; returns the part inside the trimmed output. */
  #advance(n: number): number {
    const spf = this.#split.tag?.frame.samples ?? 1152;
    this.#trim ??= mp3Trim(this.#split.tag, spf);
    const start = this.#decoded;
    this.#decoded += n;
    return Math.max(
      0,
      Math.min(start + n, this.#trim.endSample) - Math.max(start, this.#trim.trimStart),
    );
  }

  /** Ends the input; throws AudioDecodeError if the stream held no MPEG audio frame. */
  end(): void {
    this.#check();
    if (this.ended) return;
    this.ended = true;
    this.#decode(this.#split.end());
    if (this.sampleRate === undefined) {
      throw _decodeError(this.#path, "not an audio file (no MP3 frames found)");
    }
  }

  #check() {
    if (this.#closed) throw new Error("Mp3PushDecoder is closed");
  }

  #decode(frames: { frame: { samples: number }; data: Uint8Array }[]) {
    const lib = this.#lib, pcm = this.#pcm, info = this.#info;
    for (const { frame, data } of frames) {
      if (!this.#trim) {
        const spf = this.#split.tag?.frame.samples ?? 1152;
        this.#trim = mp3Trim(this.#split.tag, spf);
      }
      const n = lib.ss_mp3_decode(this.#dec, data, data.length, pcm, info);
      if (n <= 0) {
        // A frame whose bit reservoir we never saw: at a stream's start it holds nothing
        // (dropped as ffmpeg does); after a gap it stands for lost audio (concealed).
        if (this.#afterGap) this.#dropped += this.#advance(frame.samples);
        continue;
      }
      this.#afterGap = false;
      this.mpegFrames++;
      const ch = info[1]!;
      if (this.sampleRate === undefined) {
        this.sampleRate = info[2]!;
        this.channels = ch;
      }
      const start = this.#decoded;
      this.#decoded += n;
      const from = Math.max(start, this.#trim.trimStart) - start;
      const to = Math.min(start + n, this.#trim.endSample) - start;
      if (to <= from) continue;
      this.#emit(pcm.subarray(from * ch, to * ch), ch);
    }
  }

  #emit(samples: Int16Array, ch: number) {
    const want = this.channels!;
    let out: Int16Array;
    if (ch === want) out = samples.slice();
    else if (want === 2) { // mono frame in a stereo stream: duplicate
      out = new Int16Array(samples.length * 2);
      for (let i = 0; i < samples.length; i++) out[2 * i] = out[2 * i + 1] = samples[i]!;
    } else { // stereo frame in a mono stream: average
      out = new Int16Array(samples.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = (samples[2 * i]! + samples[2 * i + 1]!) >> 1;
    }
    this.emit(out, out.length / want);
  }

  /** Frees the native decoder. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    _untrack(this);
    this.#lib.ss_mp3_free(this.#dec);
  }

  /** @internal used when the library unloads */
  _closeSync(): void {
    this.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Most bytes a WAV header (everything before the `data` chunk's PCM) may take when pushed. */
export const MAX_WAV_HEADER_BYTES = 1024 * 1024;

/** WAV push decoder: parses the header, then passes 16-bit PCM through. No FFI. */
export class WavPushDecoder extends _PcmQueue implements PushDecoder {
  /** Always "wav". */
  readonly codec = "wav" as const;
  #path: string | undefined;
  #head = new Uint8Array(0);
  #header: WavHeader | undefined;
  #left = Infinity; // PCM bytes still expected
  #carry = new Uint8Array(0); // a partial frame

  /** @param options error message name */
  constructor(options: PushDecoderOptions = {}) {
    super();
    this.#path = options.path;
  }

  /** Sample rate once the header was parsed. */
  get sampleRate(): number | undefined {
    return this.#header?.sampleRate;
  }

  /** Channels once the header was parsed. */
  get channels(): number | undefined {
    return this.#header?.channels;
  }

  /** Feeds WAV bytes. */
  push(bytes: Uint8Array): void {
    if (this.ended) throw new Error("WavPushDecoder: push after end");
    if (!this.#header) {
      const all = new Uint8Array(this.#head.length + bytes.length);
      all.set(this.#head);
      all.set(bytes, this.#head.length);
      const r = parseWavHeader(all);
      if (r.kind === "error") throw _decodeError(this.#path, r.reason);
      if (r.kind === "more") {
        // Chunks before `data` are small in real files; a header that never ends is refused.
        if (all.length > MAX_WAV_HEADER_BYTES) {
          throw _decodeError(this.#path, `WAV header larger than ${MAX_WAV_HEADER_BYTES} bytes`);
        }
        this.#head = all;
        return;
      }
      this.#header = r.header;
      this.#left = r.header.dataBytes ?? Infinity;
      this.#head = new Uint8Array(0);
      bytes = all.subarray(r.header.dataOffset);
    }
    this.#pcm(bytes);
  }

  #pcm(bytes: Uint8Array) {
    if (this.#left <= 0) return; // chunks after the data chunk (LIST, id3) are not audio
    if (bytes.length > this.#left) bytes = bytes.subarray(0, this.#left);
    this.#left -= bytes.length;
    const frameBytes = 2 * this.#header!.channels;
    const all = new Uint8Array(this.#carry.length + bytes.length);
    all.set(this.#carry);
    all.set(bytes, this.#carry.length);
    const whole = all.length - (all.length % frameBytes);
    this.#carry = all.slice(whole);
    if (whole === 0) return;
    const pcm = new Int16Array(whole / 2);
    new Uint8Array(pcm.buffer).set(all.subarray(0, whole));
    this.emit(pcm, whole / frameBytes);
  }

  /** Ends the input; throws if the header never completed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.#header) {
      const r = parseWavHeader(this.#head);
      throw _decodeError(this.#path, r.kind === "error" ? r.reason : "truncated WAV header");
    }
  }

  /** Nothing native to free; idempotent. */
  close(): void {}

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {}
}

/**
 * Creates a push decoder for a codec (loads the native library for MP3).
 * @param codec "mp3" or "wav"
 * @param options error message name
 */
export async function openPushDecoder(
  codec: "mp3" | "wav",
  options: PushDecoderOptions = {},
): Promise<PushDecoder> {
  return codec === "mp3" ? await Mp3PushDecoder.open(options) : new WavPushDecoder(options);
}
