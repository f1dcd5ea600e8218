/**
 * The FFI file of lib/codec: the C ABI of Debian's `libopus.so.0` (package `libopus0`) and
 * `libsoxr.so.0` (package `libsoxr0`), each in one `symbols` object, loaded lazily.
 *
 * Nothing here runs at import time: a library is opened on the first {@linkcode loadOpus} /
 * {@linkcode loadSoxr}. Order: env `SOUNDSOCK_LIBOPUS` / `SOUNDSOCK_LIBSOXR` (a path), else the
 * soname, found by the system loader. libopus's variadic `opus_encoder_ctl` /
 * `opus_decoder_ctl` cannot be called through Deno FFI (fixed-argument calls only); they go
 * through `ss_opus_ctl_set` / `ss_opus_ctl_get` in our native shim (lib/audio/ffi.ts).
 *
 * @module
 */

import { CodecLibraryError } from "./errors.ts";

/** libopus 1.x functions we bind (all non-variadic). */
export const opusSymbols = {
  /** const char* opus_get_version_string(void) */
  opus_get_version_string: { parameters: [], result: "pointer" },
  opus_strerror: {
    parameters: [
      "i32", // int error
    ],
    result: "pointer", // const char* (static)
  },
  opus_encoder_create: {
    parameters: [
      "i32", // opus_int32 Fs
      "i32", // int channels
      "i32", // int application (OPUS_APPLICATION_*)
      "buffer", // int* error
    ],
    result: "pointer", // OpusEncoder* or NULL
  },
  opus_encoder_destroy: {
    parameters: [
      "pointer", // OpusEncoder* st
    ],
    result: "void",
  },
  opus_encode: {
    parameters: [
      "pointer", // OpusEncoder* st
      "buffer", // const opus_int16* pcm (frame_size * channels, interleaved)
      "i32", // int frame_size (samples per channel)
      "buffer", // unsigned char* data
      "i32", // opus_int32 max_data_bytes
    ],
    result: "i32", // packet length in bytes, or < 0 error
  },
  opus_encode_float: {
    parameters: [
      "pointer", // OpusEncoder* st
      "buffer", // const float* pcm (frame_size * channels, interleaved, ±1.0)
      "i32", // int frame_size
      "buffer", // unsigned char* data
      "i32", // opus_int32 max_data_bytes
    ],
    result: "i32", // packet length in bytes, or < 0 error
  },
  opus_decoder_create: {
    parameters: [
      "i32", // opus_int32 Fs
      "i32", // int channels
      "buffer", // int* error
    ],
    result: "pointer", // OpusDecoder* or NULL
  },
  opus_decoder_destroy: {
    parameters: [
      "pointer", // OpusDecoder* st
    ],
    result: "void",
  },
  opus_decode: {
    parameters: [
      "pointer", // OpusDecoder* st
      "buffer", // const unsigned char* data (NULL = packet lost: conceal)
      "i32", // opus_int32 len
      "buffer", // opus_int16* pcm (frame_size * channels)
      "i32", // int frame_size (capacity; for PLC / FEC exactly the lost duration)
      "i32", // int decode_fec (1 = decode the in-band FEC of the previous, lost frame)
    ],
    result: "i32", // samples per channel, or < 0 error
  },
  opus_packet_get_nb_samples: {
    parameters: [
      "buffer", // const unsigned char* packet
      "i32", // opus_int32 len
      "i32", // opus_int32 Fs
    ],
    result: "i32", // samples per channel, or < 0 error
  },
} as const;

/** libsoxr 0.1 functions we bind. */
export const soxrSymbols = {
  /** const char* soxr_version(void) */
  soxr_version: { parameters: [], result: "pointer" },
  soxr_io_spec: {
    parameters: [
      "u32", // soxr_datatype_t itype
      "u32", // soxr_datatype_t otype
    ],
    // soxr_io_spec_t { itype, otype; double scale; void* e; unsigned long flags; }
    result: { struct: ["u32", "u32", "f64", "pointer", "u64"] },
  },
  soxr_quality_spec: {
    parameters: [
      "u64", // unsigned long recipe (SOXR_HQ = 4, ...)
      "u64", // unsigned long flags
    ],
    // soxr_quality_spec_t { double precision, phase_response, passband_end, stopband_begin;
    //                       void* e; unsigned long flags; }
    result: { struct: ["f64", "f64", "f64", "f64", "pointer", "u64"] },
  },
  soxr_create: {
    parameters: [
      "f64", // double input_rate
      "f64", // double output_rate
      "u32", // unsigned num_channels
      "buffer", // soxr_error_t* error (const char*)
      "buffer", // const soxr_io_spec_t*
      "buffer", // const soxr_quality_spec_t*
      "pointer", // const soxr_runtime_spec_t* (NULL = defaults: 1 thread)
    ],
    result: "pointer", // soxr_t or NULL
  },
  soxr_process: {
    parameters: [
      "pointer", // soxr_t
      "buffer", // soxr_in_t in (NULL = end of input: flush)
      "usize", // size_t ilen (frames)
      "buffer", // size_t* idone
      "buffer", // soxr_out_t out
      "usize", // size_t olen (frames)
      "buffer", // size_t* odone
    ],
    result: "pointer", // soxr_error_t (NULL = ok)
  },
  soxr_delay: {
    parameters: [
      "pointer", // soxr_t
    ],
    result: "f64", // output frames buffered (latency)
  },
  soxr_delete: {
    parameters: [
      "pointer", // soxr_t
    ],
    result: "void",
  },
} as const;

/** libopus's functions once loaded. */
export type OpusLib = Deno.DynamicLibrary<typeof opusSymbols>["symbols"];
/** libsoxr's functions once loaded. */
export type SoxrLib = Deno.DynamicLibrary<typeof soxrSymbols>["symbols"];

let _opus: Deno.DynamicLibrary<typeof opusSymbols> | undefined;
let _soxr: Deno.DynamicLibrary<typeof soxrSymbols> | undefined;

/**
 * Loads libopus (once). Env `SOUNDSOCK_LIBOPUS` overrides the soname `libopus.so.0`.
 *
 * @throws {CodecLibraryError} `Cannot load libopus: <cause>. Install it with: apt-get install libopus0`
 */
export function loadOpus(): OpusLib {
  _opus ??= _openCodecLibrary(
    "libopus",
    "SOUNDSOCK_LIBOPUS",
    "libopus.so.0",
    "libopus0",
    opusSymbols,
  );
  return _opus.symbols;
}

/**
 * Loads libsoxr (once). Env `SOUNDSOCK_LIBSOXR` overrides the soname `libsoxr.so.0`.
 *
 * @throws {CodecLibraryError} `Cannot load libsoxr: <cause>. Install it with: apt-get install libsoxr0`
 */
export function loadSoxr(): SoxrLib {
  _soxr ??= _openCodecLibrary(
    "libsoxr",
    "SOUNDSOCK_LIBSOXR",
    "libsoxr.so.0",
    "libsoxr0",
    soxrSymbols,
  );
  return _soxr.symbols;
}

/** libopus's version string, e.g. `libopus 1.3.1`. */
export function opusVersion(): string {
  return _cStringAt(loadOpus().opus_get_version_string()) ?? "libopus (unknown version)";
}

/** libsoxr's version string, e.g. `libsoxr-0.1.3`. */
export function soxrVersion(): string {
  return _cStringAt(loadSoxr().soxr_version()) ?? "libsoxr (unknown version)";
}

/**
 * Opens a Debian codec library by soname (or the path in env `envName`); a failure is one
 * {@linkcode CodecLibraryError} naming the package to install. Used for libopus, libsoxr and
 * libmp3lame (lib/codec/lame.ts).
 */
export function _openCodecLibrary<S extends Deno.ForeignLibraryInterface>(
  what: string,
  envName: string,
  soname: string,
  debianPackage: string,
  symbols: S,
): Deno.DynamicLibrary<S> {
  const path = Deno.env.get(envName) ?? soname;
  try {
    return Deno.dlopen(path, symbols);
  } catch (cause) {
    // Deno says "Could not open library: Could not open library: <dlerror>": keep the dlerror.
    const why = (cause instanceof Error ? cause.message : String(cause))
      .replace(/^(Could not open library: )+/, "");
    throw new CodecLibraryError(
      `Cannot load ${what}: ${why}. Install it with: apt-get install ${debianPackage}`,
      debianPackage,
      { cause },
    );
  }
}

/** A static C string, or undefined for NULL. */
export function _cStringAt(p: Deno.PointerValue): string | undefined {
  return p === null ? undefined : Deno.UnsafePointerView.getCString(p);
}
