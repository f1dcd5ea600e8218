/**
 * WAV (RIFF) reading and streaming writing, in pure TypeScript.
 *
 * The reader accepts 16-bit PCM only (WAVE_FORMAT_PCM, or EXTENSIBLE with the PCM sub-format);
 * decodeFile() hands other WAV encodings to miniaudio instead.
 * PCM is little-endian on disk and Int16Array is host-endian: all supported hosts are LE.
 *
 * @module
 */

import { _decodeError } from "./errors.ts";

/** Format and location of the PCM data of a WAV stream. */
export interface WavHeader {
  /** Sample rate in Hz. */
  sampleRate: number;
  /** Channel count. */
  channels: number;
  /** Bits per sample (always 16 for a header the reader accepts). */
  bitsPerSample: number;
  /** WAVE format tag (1 = PCM, 3 = float; EXTENSIBLE is resolved to its sub-format). */
  format: number;
  /** Byte offset of the first PCM byte. */
  dataOffset: number;
  /** PCM bytes, or undefined when the header says "unknown" (streamed WAV, size 0 / 0xFFFFFFFF). */
  dataBytes: number | undefined;
}

/** Result of {@linkcode parseWavHeader}. "more" = not enough bytes yet. */
export type WavHeaderResult =
  | { kind: "ok"; header: WavHeader }
  | { kind: "more" }
  | { kind: "error"; reason: string };

/** Is this header 16-bit PCM (what the TypeScript reader handles)? */
export function isPcm16(h: WavHeader): boolean {
  return h.format === 1 && h.bitsPerSample === 16;
}

/** Is this a RIFF/WAVE stream? (needs 12 bytes) */
export function isWav(bytes: Uint8Array): boolean {
  return _ascii(bytes, 0, 4) === "RIFF" && _ascii(bytes, 8, 4) === "WAVE";
}

function _ascii(b: Uint8Array, i: number, n: number): string {
  return i + n <= b.length ? String.fromCharCode(...b.subarray(i, i + n)) : "";
}

/**
 * Parses the RIFF header up to the start of the `data` chunk.
 * `allowOtherEncodings` accepts non-16-bit formats (for probing); the reader does not.
 */
export function parseWavHeader(bytes: Uint8Array, allowOtherEncodings = false): WavHeaderResult {
  if (bytes.length < 12) return { kind: "more" };
  if (!isWav(bytes)) return { kind: "error", reason: "not a WAV file" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 12;
  let fmt: { tag: number; channels: number; rate: number; bits: number } | undefined;
  for (;;) {
    if (p + 8 > bytes.length) return { kind: "more" };
    const id = _ascii(bytes, p, 4);
    const size = view.getUint32(p + 4, true);
    if (id === "data") {
      if (!fmt) return { kind: "error", reason: "WAV file has no fmt chunk before its data" };
      if (fmt.channels < 1 || fmt.rate < 1) return { kind: "error", reason: "bad WAV fmt chunk" };
      return {
        kind: "ok",
        header: {
          sampleRate: fmt.rate,
          channels: fmt.channels,
          bitsPerSample: fmt.bits,
          format: fmt.tag,
          dataOffset: p + 8,
          dataBytes: size === 0 || size === 0xffffffff ? undefined : size,
        },
      };
    }
    if (id === "fmt ") {
      if (p + 8 + Math.min(size, 40) > bytes.length) return { kind: "more" };
      if (size < 16) return { kind: "error", reason: "bad WAV fmt chunk" };
      let tag = view.getUint16(p + 8, true);
      const bits = view.getUint16(p + 22, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first 2 bytes of the sub-format GUID.
      if (tag === 0xfffe && size >= 26) tag = view.getUint16(p + 32, true);
      fmt = {
        tag,
        channels: view.getUint16(p + 10, true),
        rate: view.getUint32(p + 12, true),
        bits,
      };
      if (!allowOtherEncodings && (tag !== 1 || bits !== 16)) {
        const what = tag === 3
          ? `${bits}-bit float`
          : tag === 1
          ? `${bits}-bit PCM`
          : `format ${tag}`;
        return {
          kind: "error",
          reason: `unsupported WAV encoding (${what}); only 16-bit PCM is supported`,
        };
      }
    }
    p += 8 + size + (size & 1); // chunks are word-aligned
  }
}

/** Decoded 16-bit PCM of a WAV stream. */
export interface WavData extends WavHeader {
  /** Interleaved samples. */
  pcm: Int16Array;
  /** Sample frames (pcm.length / channels). */
  frames: number;
}

/**
 * Reads a complete 16-bit PCM WAV from bytes.
 * @param bytes the whole file
 * @param path used in error messages
 * @throws {AudioDecodeError} not a WAV, unsupported encoding, or truncated header
 */
export function readWav(bytes: Uint8Array, path?: string): WavData {
  const r = parseWavHeader(bytes);
  if (r.kind === "more") throw _decodeError(path, "truncated WAV header");
  if (r.kind === "error") throw _decodeError(path, r.reason);
  const h = r.header;
  const available = bytes.length - h.dataOffset;
  const dataBytes = Math.min(h.dataBytes ?? available, available);
  const frameBytes = 2 * h.channels;
  const frames = Math.floor(dataBytes / frameBytes);
  const pcm = new Int16Array(frames * h.channels);
  new Uint8Array(pcm.buffer).set(bytes.subarray(h.dataOffset, h.dataOffset + frames * frameBytes));
  return { ...h, pcm, frames };
}

/** Builds a 44-byte canonical WAV header for 16-bit PCM. */
export function wavHeader(sampleRate: number, channels: number, dataBytes: number): Uint8Array {
  const b = new Uint8Array(44);
  const v = new DataView(b.buffer);
  const text = (i: number, s: string) => [...s].forEach((c, k) => (b[i + k] = c.charCodeAt(0)));
  text(0, "RIFF");
  v.setUint32(4, Math.min(0xffffffff, 36 + dataBytes), true);
  text(8, "WAVE");
  text(12, "fmt ");
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * channels * 2, true);
  v.setUint16(32, channels * 2, true);
  v.setUint16(34, 16, true);
  text(36, "data");
  v.setUint32(40, Math.min(0xffffffff, dataBytes), true);
  return b;
}

/** Options of {@linkcode WavWriter.create}. */
export interface WavWriterOptions {
  /** Sample rate in Hz. */
  sampleRate: number;
  /** Channel count. */
  channels: number;
}

/**
 * Streaming WAV writer: writes a header with placeholder sizes, appends PCM, and patches the
 * sizes on close. The path `-` writes raw PCM (s16le, no header) to stdout instead.
 */
export class WavWriter implements AsyncDisposable {
  /** Sample rate in Hz. */
  readonly sampleRate: number;
  /** Channel count. */
  readonly channels: number;
  /** Where the PCM goes: the file path, or "-" for stdout. */
  readonly path: string;
  #file: Deno.FsFile | undefined;
  #bytes = 0;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile | undefined, o: WavWriterOptions) {
    this.path = path;
    this.#file = file;
    this.sampleRate = o.sampleRate;
    this.channels = o.channels;
  }

  /**
   * Creates (truncates) `path` and writes a placeholder header; `-` means raw PCM to stdout.
   * @param path output file, or "-"
   * @param options stream format
   */
  static async create(path: string, options: WavWriterOptions): Promise<WavWriter> {
    if (path === "-") return new WavWriter(path, undefined, options);
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      await _writeAll(file, wavHeader(options.sampleRate, options.channels, 0));
    } catch (err) {
      file.close();
      throw err;
    }
    return new WavWriter(path, file, options);
  }

  /** PCM frames written so far. */
  get framesWritten(): number {
    return this.#bytes / (2 * this.channels);
  }

  /** Appends interleaved PCM (length must be a multiple of channels). */
  async write(pcm: Int16Array): Promise<void> {
    if (this.#closed) throw new Error(`Cannot write to "${this.path}": it is closed`);
    const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    if (this.#file) await _writeAll(this.#file, bytes);
    else await _writeAll(Deno.stdout, bytes);
    this.#bytes += bytes.length;
  }

  /** Patches the header sizes and closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const f = this.#file;
    if (!f) return;
    try {
      await f.seek(0, Deno.SeekMode.Start);
      await _writeAll(f, wavHeader(this.sampleRate, this.channels, this.#bytes));
    } finally {
      f.close();
    }
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function _writeAll(w: { write(p: Uint8Array): Promise<number> }, bytes: Uint8Array) {
  let off = 0;
  while (off < bytes.length) off += await w.write(bytes.subarray(off));
}
