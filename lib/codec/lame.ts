/**
 * MP3 encoding with Debian's LAME (`libmp3lame.so.0`, package `libmp3lame0`) through Deno FFI:
 * what the Icecast MP3 mount publishes (lib/icecast/source.ts), because Icecast 2.4 shows a
 * song title only for MP3 (its metadata update is refused on Ogg mounts).
 *
 * Every function bound here is non-variadic, so no shim is needed. The encoder writes no
 * Xing/Info frame (a stream has no end to describe), so its output can be cut and joined at
 * any frame, as a live stream is.
 *
 * @example One second of silence to MP3
 * ```ts
 * using enc = Mp3Encoder.create({ sampleRate: 48_000, channels: 2, bitrateKbps: 128 });
 * const bytes = enc.encode(new Int16Array(48_000 * 2));
 * const tail = enc.flush();
 * ```
 *
 * @module
 */

import { _openCodecLibrary } from "./ffi.ts";

const lameSymbols = {
  /** lame_global_flags* lame_init(void) */
  lame_init: { parameters: [], result: "pointer" },
  /** int lame_set_in_samplerate(lame_global_flags*, int) */
  lame_set_in_samplerate: { parameters: ["pointer", "i32"], result: "i32" },
  /** int lame_set_out_samplerate(lame_global_flags*, int) */
  lame_set_out_samplerate: { parameters: ["pointer", "i32"], result: "i32" },
  /** int lame_set_num_channels(lame_global_flags*, int) */
  lame_set_num_channels: { parameters: ["pointer", "i32"], result: "i32" },
  /** int lame_set_brate(lame_global_flags*, int kbit/s) */
  lame_set_brate: { parameters: ["pointer", "i32"], result: "i32" },
  /** int lame_set_quality(lame_global_flags*, int 0 best … 9 fastest) */
  lame_set_quality: { parameters: ["pointer", "i32"], result: "i32" },
  /** int lame_set_bWriteVbrTag(lame_global_flags*, int) */
  lame_set_bWriteVbrTag: { parameters: ["pointer", "i32"], result: "i32" },
  /** int lame_init_params(lame_global_flags*) */
  lame_init_params: { parameters: ["pointer"], result: "i32" },
  /**
   * int lame_encode_buffer_interleaved(lame_global_flags*, short pcm[], int samples per
   * channel, unsigned char* mp3buf, int mp3buf_size): bytes written, or < 0.
   */
  lame_encode_buffer_interleaved: {
    parameters: ["pointer", "buffer", "i32", "buffer", "i32"],
    result: "i32",
  },
  /** int lame_encode_flush(lame_global_flags*, unsigned char* mp3buf, int size) */
  lame_encode_flush: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  /** int lame_close(lame_global_flags*) */
  lame_close: { parameters: ["pointer"], result: "i32" },
  /** const char* get_lame_version(void) */
  get_lame_version: { parameters: [], result: "pointer" },
} as const;

type LameLib = Deno.DynamicLibrary<typeof lameSymbols>["symbols"];
let _lame: Deno.DynamicLibrary<typeof lameSymbols> | undefined;

/**
 * Loads libmp3lame (once). Env `SOUNDSOCK_LIBMP3LAME` overrides the soname `libmp3lame.so.0`.
 *
 * @throws {CodecLibraryError} `Cannot load libmp3lame: <cause>. Install it with: apt-get install libmp3lame0`
 */
export function loadLame(): LameLib {
  _lame ??= _openCodecLibrary(
    "libmp3lame",
    "SOUNDSOCK_LIBMP3LAME",
    "libmp3lame.so.0",
    "libmp3lame0",
    lameSymbols,
  );
  return _lame.symbols;
}

/** LAME's version, e.g. `3.100`. */
export function lameVersion(): string {
  const p = loadLame().get_lame_version();
  return p === null ? "unknown" : Deno.UnsafePointerView.getCString(p);
}

/** A LAME call failed; `code` is LAME's return value. */
export class Mp3EncodeError extends Error {
  /** LAME's negative return value. */
  readonly code: number;
  /** Creates the error; `message` is user-facing. */
  constructor(message: string, code: number) {
    super(message);
    this.name = "Mp3EncodeError";
    this.code = code;
  }
}

/** Options of {@linkcode Mp3Encoder.create}. */
export interface Mp3EncoderOptions {
  /** Input (and output) rate in Hz. */
  sampleRate: number;
  /** Interleaved input channels, 1 or 2. */
  channels: 1 | 2;
  /** Constant bitrate in kbit/s. @default {128} */
  bitrateKbps?: number;
  /** LAME's algorithm quality, 0 (best, slowest) … 9 (fastest). @default {5} */
  quality?: number;
}

/** A constant-bitrate MP3 encoder for interleaved s16 PCM. */
export class Mp3Encoder implements Disposable {
  /** Interleaved channels of the input. */
  readonly channels: 1 | 2;
  #lib: LameLib;
  #gfp: Deno.PointerValue;
  #out = new Uint8Array(8192);

  private constructor(lib: LameLib, gfp: Deno.PointerValue, channels: 1 | 2) {
    this.#lib = lib;
    this.#gfp = gfp;
    this.channels = channels;
  }

  /**
   * Creates an encoder.
   *
   * @throws {CodecLibraryError} libmp3lame is missing (the message names the package)
   * @throws {Mp3EncodeError} LAME refused the settings
   */
  static create(options: Mp3EncoderOptions): Mp3Encoder {
    const lib = loadLame();
    const gfp = lib.lame_init();
    if (gfp === null) throw new Mp3EncodeError("Cannot create an MP3 encoder (lame_init)", -1);
    const settings: [string, number][] = [
      ["in_samplerate", lib.lame_set_in_samplerate(gfp, options.sampleRate)],
      ["out_samplerate", lib.lame_set_out_samplerate(gfp, options.sampleRate)],
      ["num_channels", lib.lame_set_num_channels(gfp, options.channels)],
      ["brate", lib.lame_set_brate(gfp, options.bitrateKbps ?? 128)],
      ["quality", lib.lame_set_quality(gfp, options.quality ?? 5)],
      ["bWriteVbrTag", lib.lame_set_bWriteVbrTag(gfp, 0)],
      ["init_params", lib.lame_init_params(gfp)],
    ];
    const failed = settings.find(([, code]) => code < 0);
    if (failed) {
      lib.lame_close(gfp);
      throw new Mp3EncodeError(`Cannot set up the MP3 encoder (lame_set_${failed[0]})`, failed[1]);
    }
    return new Mp3Encoder(lib, gfp, options.channels);
  }

  /**
   * Encodes interleaved samples; returns the MP3 bytes completed so far (often empty: LAME
   * holds about one frame back).
   */
  encode(pcm: Int16Array): Uint8Array {
    const frames = Math.floor(pcm.length / this.channels);
    if (frames === 0) return new Uint8Array(0);
    // LAME's worst case: 1.25 × samples + 7200 bytes.
    const need = Math.ceil(1.25 * frames) + 7200;
    if (this.#out.length < need) this.#out = new Uint8Array(need);
    const n = this.#lib.lame_encode_buffer_interleaved(
      this.#gfp,
      pcm,
      frames,
      this.#out,
      this.#out.length,
    );
    if (n < 0) throw new Mp3EncodeError(`MP3 encoding failed (LAME error ${n})`, n);
    return this.#out.slice(0, n);
  }

  /** Ends the stream: the last frames (with the encoder's padding). */
  flush(): Uint8Array {
    if (this.#out.length < 7200) this.#out = new Uint8Array(7200);
    const n = this.#lib.lame_encode_flush(this.#gfp, this.#out, this.#out.length);
    if (n < 0) throw new Mp3EncodeError(`MP3 encoding failed (LAME error ${n})`, n);
    return this.#out.slice(0, n);
  }

  /** Frees the encoder. Idempotent. */
  [Symbol.dispose](): void {
    if (this.#gfp === null) return;
    this.#lib.lame_close(this.#gfp);
    this.#gfp = null;
  }
}
