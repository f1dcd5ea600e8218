/**
 * Whole-file and streaming decoding to 16-bit PCM, and cheap probing of songs.
 *
 * MP3 goes through our own frame path ({@linkcode Mp3PushDecoder}: ID3 skipped, LAME delay and
 * padding trimmed, output matches ffmpeg); 16-bit WAV is parsed in TypeScript; FLAC and other
 * WAV encodings use miniaudio's ma_decoder.
 *
 * @module
 */

import { _decodeError, AudioDecodeError } from "./errors.ts";
import { _cString, _resultText, _track, _untrack, type AudioLib, loadAudioLib } from "./ffi.ts";
import { _id3v2Size, scanMp3 } from "./mp3_frames.ts";
import { _concat, Mp3PushDecoder, type PushDecoder, WavPushDecoder } from "./push_decoder.ts";
import { isPcm16, parseWavHeader, readWav } from "./wav.ts";

/** Codecs we decode. */
export type Codec = "mp3" | "wav" | "flac";

/** A decoded song. */
export interface DecodedAudio {
  /** Sample rate in Hz. */
  sampleRate: number;
  /** Channel count. */
  channels: number;
  /** Sample frames (pcm.length / channels). */
  frames: number;
  /** Interleaved signed 16-bit samples. */
  pcm: Int16Array;
  /** The codec of the source. */
  codec: Codec;
}

/** Options of the decode functions. */
export interface DecodeOptions {
  /** Cancels decoding (checked between chunks). */
  signal?: AbortSignal;
  /**
   * Name used in error messages for decodeBytes.
   * @default undefined (messages say "audio data")
   */
  path?: string;
}

/** Guesses the codec from the first bytes (needs ~12 bytes; an ID3v2 tag is skipped for FLAC). */
export function detectCodec(bytes: Uint8Array): Codec | undefined {
  const a = (i: number, n: number) => String.fromCharCode(...bytes.subarray(i, i + n));
  if (a(0, 4) === "RIFF" && a(8, 4) === "WAVE") return "wav";
  const skip = _id3v2Size(bytes, 0);
  if (a(skip, 4) === "fLaC") return "flac";
  if (skip > 0) return "mp3"; // ID3v2 in front of something else: MP3 is by far the most likely
  if (bytes[0] === 0xff && ((bytes[1] ?? 0) & 0xe0) === 0xe0) return "mp3";
  return undefined;
}

/** miniaudio ma_decoder (FLAC, non-16-bit WAV), always giving s16 at the file's own format. */
class _MaDecoder implements Disposable {
  #lib: AudioLib;
  #h: Deno.PointerValue;
  readonly sampleRate: number;
  readonly channels: number;

  constructor(lib: AudioLib, src: { path: string } | { bytes: Uint8Array }, name?: string) {
    this.#lib = lib;
    const info = new Int32Array(3);
    this.#h = "path" in src
      ? lib.ss_decoder_open_file(_cString(src.path), info)
      : lib.ss_decoder_open_memory(src.bytes, BigInt(src.bytes.length), info);
    if (this.#h === null) {
      throw _decodeError(
        name,
        `not an audio file or unsupported encoding (miniaudio: ${_resultText(lib, info[0]!)})`,
      );
    }
    this.sampleRate = info[1]!;
    this.channels = info[2]!;
    _track(this);
  }

  /** Length in frames if known cheaply (FLAC STREAMINFO, WAV), else 0. */
  get length(): number {
    return Number(this.#lib.ss_decoder_length(this.#h));
  }

  /** Next chunk of up to `frames` frames, or null at the end. */
  read(frames: number, name?: string): Int16Array | null {
    const buf = new Int16Array(frames * this.channels);
    const n = this.#lib.ss_decoder_read(this.#h, buf, frames);
    if (n < 0) throw _decodeError(name, `corrupt data (miniaudio: ${_resultText(this.#lib, n)})`);
    return n === 0 ? null : buf.subarray(0, n * this.channels);
  }

  close(): void {
    if (this.#h === null) return;
    _untrack(this);
    this.#lib.ss_decoder_close(this.#h);
    this.#h = null;
  }

  _closeSync(): void {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * File bytes decodeStream reads and decodes at a time: 64 KiB is 4 s of a 128 kbit/s MP3 (~8 ms
 * to decode here); 256 KiB held the station's event loop for ~30 ms at each read.
 */
const CHUNK_BYTES = 64 * 1024;
const CHUNK_FRAMES = 16384;

/**
 * Decodes a whole song held in memory.
 * @throws {AudioDecodeError} `Cannot decode "<path>": not an audio file` and similar
 */
export async function decodeBytes(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<DecodedAudio> {
  const { path, signal } = options;
  signal?.throwIfAborted();
  const codec = detectCodec(bytes) ?? _sniffMp3(bytes);
  if (codec === undefined) throw _decodeError(path, "not an audio file");
  if (codec === "wav") {
    const r = parseWavHeader(bytes, true);
    if (r.kind !== "ok" || isPcm16(r.header)) {
      const w = readWav(bytes, path);
      if (w.frames === 0 && (w.dataBytes ?? 0) > 0) throw _decodeError(path, "truncated WAV data");
      return {
        sampleRate: w.sampleRate,
        channels: w.channels,
        frames: w.frames,
        pcm: w.pcm,
        codec,
      };
    }
  }
  if (codec === "mp3") {
    using dec = await Mp3PushDecoder.open({ path });
    for (let o = 0; o < bytes.length; o += CHUNK_BYTES) {
      signal?.throwIfAborted();
      dec.push(bytes.subarray(o, o + CHUNK_BYTES));
    }
    dec.end();
    const pcm = dec.read() ?? new Int16Array(0);
    const ch = dec.channels!;
    return { sampleRate: dec.sampleRate!, channels: ch, frames: pcm.length / ch, pcm, codec };
  }
  const lib = await loadAudioLib();
  using dec = new _MaDecoder(lib, { bytes }, path);
  return _readAll(dec, codec, path, signal);
}

function _readAll(dec: _MaDecoder, codec: Codec, path?: string, signal?: AbortSignal) {
  const chunks: Int16Array[] = [];
  for (;;) {
    signal?.throwIfAborted();
    const c = dec.read(CHUNK_FRAMES * 4, path);
    if (!c) break;
    chunks.push(c.slice());
  }
  const pcm = _concat(chunks.length ? chunks : [new Int16Array(0)]);
  if (pcm.length === 0) throw _decodeError(path, "no audio in the file (truncated or corrupt)");
  const { sampleRate, channels } = dec;
  return { sampleRate, channels, frames: pcm.length / channels, pcm, codec };
}

/** MP3 without ID3 and not starting with a frame (junk first): accept if frames are found. */
function _sniffMp3(bytes: Uint8Array): Codec | undefined {
  const head = bytes.subarray(0, 64 * 1024);
  const s = scanMp3(head);
  return s && s.frames.length >= 4 ? "mp3" : undefined;
}

/**
 * Reads and decodes a whole file.
 * @throws {AudioDecodeError} naming the file: missing, not audio, corrupt, truncated
 */
export async function decodeFile(path: string, options: DecodeOptions = {}): Promise<DecodedAudio> {
  return decodeBytes(await _readFile(path), { ...options, path });
}

async function _readFile(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (cause) {
    const why = cause instanceof Deno.errors.NotFound ? "no such file" : "cannot read the file";
    throw _decodeError(path, why, cause);
  }
}

/** A song being decoded chunk by chunk. */
export interface DecodeStream extends AsyncIterable<Int16Array>, AsyncDisposable {
  /** The codec. */
  readonly codec: Codec;
  /** Sample rate in Hz. */
  readonly sampleRate: number;
  /** Channel count. */
  readonly channels: number;
  /** Stops decoding and releases the file / decoder. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens a file for chunked decoding without holding the whole decoded song in memory.
 * Resolves once the format is known (first MP3 frame / WAV header / FLAC STREAMINFO).
 * @throws {AudioDecodeError} as decodeFile
 */
export async function decodeStream(
  path: string,
  options: DecodeOptions = {},
): Promise<DecodeStream> {
  const { signal } = options;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (cause) {
    throw _decodeError(
      path,
      cause instanceof Deno.errors.NotFound ? "no such file" : "cannot read the file",
      cause,
    );
  }
  const head = new Uint8Array(64 * 1024);
  const n = (await file.read(head)) ?? 0;
  const first = head.subarray(0, n);
  const codec = detectCodec(first) ?? _sniffMp3(first);
  const wavOk = codec === "wav" && (() => {
    const r = parseWavHeader(first, true);
    return r.kind !== "ok" || isPcm16(r.header);
  })();
  if (codec === "mp3" || wavOk) {
    let dec: PushDecoder;
    try {
      dec = codec === "mp3" ? await Mp3PushDecoder.open({ path }) : new WavPushDecoder({ path });
      dec.push(first);
      let eof = n === 0;
      while (dec.sampleRate === undefined && !eof) {
        const more = new Uint8Array(CHUNK_BYTES);
        const m = await file.read(more);
        if (m === null) eof = true;
        else dec.push(more.subarray(0, m));
      }
      if (eof) dec.end();
    } catch (err) {
      file.close();
      throw err;
    }
    return _pushStream(codec as Codec, file, dec, signal);
  }
  file.close();
  if (codec === undefined) throw _decodeError(path, "not an audio file");
  const lib = await loadAudioLib();
  const dec = new _MaDecoder(lib, { path }, path);
  let closed = false;
  const close = () => {
    closed = true;
    dec.close();
    return Promise.resolve();
  };
  return {
    codec,
    sampleRate: dec.sampleRate,
    channels: dec.channels,
    close,
    [Symbol.asyncDispose]: close,
    async *[Symbol.asyncIterator]() {
      try {
        let any = false;
        while (!closed) {
          signal?.throwIfAborted();
          const c = dec.read(CHUNK_FRAMES, path);
          if (!c) break;
          any = true;
          yield c.slice();
        }
        if (!any) throw _decodeError(path, "no audio in the file (truncated or corrupt)");
      } finally {
        dec.close();
      }
    },
  };
}

function _pushStream(
  codec: Codec,
  file: Deno.FsFile,
  dec: PushDecoder,
  signal?: AbortSignal,
): DecodeStream {
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      file.close();
      dec.close();
    }
    return Promise.resolve();
  };
  return {
    codec,
    sampleRate: dec.sampleRate!,
    channels: dec.channels!,
    close,
    [Symbol.asyncDispose]: close,
    async *[Symbol.asyncIterator]() {
      try {
        const buf = new Uint8Array(CHUNK_BYTES);
        for (;;) {
          const pcm = dec.read();
          if (pcm) yield pcm;
          if (dec.done || closed) break;
          signal?.throwIfAborted();
          const m = await file.read(buf);
          if (m === null) dec.end();
          else dec.push(buf.subarray(0, m));
        }
      } finally {
        await close();
      }
    },
  };
}

/** Result of {@linkcode probeSong}. */
export interface SongInfo {
  /** The codec. */
  codec: Codec;
  /** Sample rate in Hz. */
  sampleRate: number;
  /** Channel count. */
  channels: number;
  /** Sample frames a full decode gives. */
  frames: number;
  /** frames as milliseconds. */
  durationMs: number;
}

/**
 * Format and exact length of a song, cheaply: frame-header scan for MP3, header for WAV,
 * STREAMINFO (via miniaudio) for FLAC.
 * @throws {AudioDecodeError} naming the file
 */
export async function probeSong(path: string): Promise<SongInfo> {
  const bytes = await _readFile(path);
  const codec = detectCodec(bytes) ?? _sniffMp3(bytes);
  const info = (sampleRate: number, channels: number, frames: number): SongInfo => ({
    codec: codec!,
    sampleRate,
    channels,
    frames,
    durationMs: Math.round(frames * 1000 / sampleRate),
  });
  if (codec === "mp3") {
    const s = scanMp3(bytes);
    if (!s || s.frames.length === 0) throw _decodeError(path, "not an audio file");
    return info(s.sampleRate, s.channels, s.totalSamples);
  }
  if (codec === "wav") {
    const r = parseWavHeader(bytes, true);
    if (r.kind === "more") throw _decodeError(path, "truncated WAV header");
    if (r.kind === "error") throw _decodeError(path, r.reason);
    const h = r.header;
    const avail = Math.min(h.dataBytes ?? Infinity, bytes.length - h.dataOffset);
    return info(h.sampleRate, h.channels, Math.floor(avail / (h.channels * h.bitsPerSample / 8)));
  }
  if (codec === "flac") {
    const lib = await loadAudioLib();
    using dec = new _MaDecoder(lib, { bytes }, path);
    const frames = dec.length;
    if (frames > 0) return info(dec.sampleRate, dec.channels, frames);
    const all = _readAll(dec, "flac", path);
    return info(all.sampleRate, all.channels, all.frames);
  }
  throw _decodeError(path, "not an audio file");
}

export { AudioDecodeError };
