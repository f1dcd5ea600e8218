/**
 * The one FFI file of lib/audio: the C ABI of native/soundsock_audio.c and lazy loading.
 *
 * Nothing here runs at import time: the library is opened on the first {@linkcode loadAudioLib}
 * so tools that never play or decode start fast.
 *
 * @module
 */

import { DEFAULT_LIBRARY_PATH, ensureNativeLibrary } from "./build.ts";
import { AudioLibraryError } from "./errors.ts";

/** ABI version the shim must report (bumped with every incompatible C change). */
const ABI_VERSION = 4;

/** The C functions we bind. `buffer` parameters are typed arrays read/written synchronously. */
export const symbols = {
  /** int32_t ss_abi_version(void) */
  ss_abi_version: { parameters: [], result: "i32" },
  /** uint64_t ss_now_ns(void) — CLOCK_MONOTONIC in ns */
  ss_now_ns: { parameters: [], result: "u64" },
  ss_result_description: {
    parameters: [
      "i32", // int32_t result (ma_result)
    ],
    result: "pointer", // const char* (static)
  },
  ss_list_devices: {
    parameters: [
      "i32", // int32_t backend: 0 auto, 1 pulse, 2 alsa, 3 null
      "i32", // int32_t capture: 0 playback, 1 capture
      "buffer", // char* out: "isDefault\tname\n" lines
      "i32", // int32_t cap: size of out in bytes
      "buffer", // int32_t* backend_out
    ],
    result: "i32", // device count, or negative ma_result
    nonblocking: true, // connecting to PulseAudio can take a while: keep the event loop free
  },
  ss_device_open: {
    parameters: [
      "i32", // int32_t backend
      "i32", // int32_t capture
      "i32", // int32_t device_index (-1 = default)
      "i32", // int32_t sample_rate
      "i32", // int32_t channels
      "i32", // int32_t period_ms
      "i32", // int32_t ring_ms
      "buffer", // int32_t* result_out
    ],
    result: "pointer", // ss_device* or NULL
    nonblocking: true,
  },
  ss_device_start: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "i32", // ma_result
    nonblocking: true,
  },
  ss_device_close: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "void",
    nonblocking: true, // stopping waits for the audio thread
  },
  /** Synchronous close, used only when the process unloads. */
  ss_device_close_sync: {
    name: "ss_device_close",
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "void",
  },
  ss_device_write: {
    parameters: [
      "pointer", // ss_device* d
      "buffer", // const int16_t* pcm
      "i32", // int32_t frames
    ],
    result: "i32", // frames accepted
  },
  ss_device_read: {
    parameters: [
      "pointer", // ss_device* d
      "buffer", // int16_t* pcm
      "i32", // int32_t frames (capacity)
    ],
    result: "i32", // frames read
  },
  ss_device_queued: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "i32", // frames in the ring
  },
  ss_device_free: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "i32", // free frames in the ring
  },
  ss_device_idle: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "void",
  },
  ss_device_stats: {
    parameters: [
      "pointer", // ss_device* d
      "buffer", // uint64_t out[5]: done, lost, underruns, first_frame_ns, device rate
    ],
    result: "void",
  },
  ss_device_backend: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "i32", // backend code
  },
  ss_device_name: {
    parameters: [
      "pointer", // ss_device* d
    ],
    result: "pointer", // const char*
  },
  ss_decoder_open_file: {
    parameters: [
      "buffer", // const char* path (NUL-terminated UTF-8)
      "buffer", // int32_t* info_out: [ma_result, sample_rate, channels]
    ],
    result: "pointer", // ss_decoder* or NULL
  },
  ss_decoder_open_memory: {
    parameters: [
      "buffer", // const uint8_t* bytes (copied)
      "i64", // int64_t len
      "buffer", // int32_t* info_out
    ],
    result: "pointer", // ss_decoder* or NULL
  },
  ss_decoder_read: {
    parameters: [
      "pointer", // ss_decoder* h
      "buffer", // int16_t* out
      "i32", // int32_t frames
    ],
    result: "i32", // frames read, 0 = end, < 0 = ma_result
  },
  ss_decoder_length: {
    parameters: [
      "pointer", // ss_decoder* h
    ],
    result: "i64", // frames, 0 = unknown
  },
  ss_decoder_close: {
    parameters: [
      "pointer", // ss_decoder* h
    ],
    result: "void",
  },
  ss_mp3_new: { parameters: [], result: "pointer" }, // ma_dr_mp3dec* ss_mp3_new(void)
  ss_mp3_free: {
    parameters: [
      "pointer", // ma_dr_mp3dec* dec
    ],
    result: "void",
  },
  ss_mp3_decode: {
    parameters: [
      "pointer", // ma_dr_mp3dec* dec
      "buffer", // const uint8_t* bytes
      "i32", // int32_t len
      "buffer", // int16_t* pcm_out (1152 * 2 samples)
      "buffer", // int32_t* info_out: frame_bytes, channels, hz, layer, bitrate_kbps
    ],
    result: "i32", // samples per channel (0 = skipped data or need more)
  },
  /** Variadic opus_*_ctl made from C (lib/codec/opus.ts); -1000 = libopus.so.0 not loadable. */
  ss_opus_ctl_set: {
    parameters: [
      "i32", // int32_t kind: 0 OpusEncoder*, 1 OpusDecoder*
      "pointer", // void* st
      "i32", // int32_t request (OPUS_SET_*)
      "i32", // int32_t value
    ],
    result: "i32", // libopus result code
  },
  ss_opus_ctl_get: {
    parameters: [
      "i32", // int32_t kind: 0 OpusEncoder*, 1 OpusDecoder*
      "pointer", // void* st
      "i32", // int32_t request (OPUS_GET_*)
      "buffer", // int32_t* out
    ],
    result: "i32", // libopus result code
  },
} as const;

/** The loaded library's functions. */
export type AudioLib = Deno.DynamicLibrary<typeof symbols>["symbols"];

let _lib: Deno.DynamicLibrary<typeof symbols> | undefined;
let _loading: Promise<AudioLib> | undefined;
/** Native handles that must be released before the library may be unloaded. */
const _open = new Set<{ _closeSync(): void }>();

/**
 * Loads the native library (building it on first use if needed). Order: env
 * `SOUNDSOCK_MINIAUDIO_LIB`, then `.cache/native/libsoundsock_audio.so`, else build it.
 *
 * @throws {AudioLibraryError} `Cannot load miniaudio: <cause>. Build it with: deno task build:native`
 */
export function loadAudioLib(): Promise<AudioLib> {
  if (_lib) return Promise.resolve(_lib.symbols);
  _loading ??= _load().catch((err) => {
    _loading = undefined; // allow a retry after the user fixed the problem
    throw err;
  });
  return _loading;
}

/** The library if it is loaded already, else undefined (never loads). */
export function _loadedLib(): AudioLib | undefined {
  return _lib?.symbols;
}

async function _load(): Promise<AudioLib> {
  const fromEnv = Deno.env.get("SOUNDSOCK_MINIAUDIO_LIB");
  let path = fromEnv ?? DEFAULT_LIBRARY_PATH;
  if (fromEnv === undefined) {
    // Builds only when missing or stale (shim changed); a no-op check otherwise.
    path = await ensureNativeLibrary();
  }
  let lib: Deno.DynamicLibrary<typeof symbols>;
  try {
    lib = Deno.dlopen(path, symbols);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new AudioLibraryError(
      `Cannot load miniaudio: ${why}. Build it with: deno task build:native`,
      { cause },
    );
  }
  const abi = lib.symbols.ss_abi_version();
  if (abi !== ABI_VERSION) {
    lib.close();
    throw new AudioLibraryError(
      `Cannot load miniaudio: ${path} has ABI ${abi}, expected ${ABI_VERSION}. ` +
        "Build it with: deno task build:native",
    );
  }
  _lib = lib;
  // A device thread running inside an unloaded library crashes the process: close devices first.
  globalThis.addEventListener("unload", closeAudioLib);
  return lib.symbols;
}

/** Registers a native resource so {@linkcode closeAudioLib} releases it before unloading. */
export function _track(resource: { _closeSync(): void }): void {
  _open.add(resource);
}

/** Forgets a resource that was closed normally. */
export function _untrack(resource: { _closeSync(): void }): void {
  _open.delete(resource);
}

/**
 * Closes every open device / decoder, then unloads the library. Safe to call more than once;
 * the next {@linkcode loadAudioLib} loads it again.
 */
export function closeAudioLib(): void {
  for (const r of [..._open]) {
    try {
      r._closeSync();
    } catch {
      // best effort while unloading
    }
  }
  _open.clear();
  if (_lib) {
    globalThis.removeEventListener("unload", closeAudioLib);
    _lib.close();
    _lib = undefined;
    _loading = undefined;
  }
}

/** Text for a miniaudio result code, e.g. "No device". */
export function _resultText(lib: AudioLib, code: number): string {
  const p = lib.ss_result_description(code);
  return p === null ? `error ${code}` : Deno.UnsafePointerView.getCString(p);
}

/** A NUL-terminated UTF-8 copy of a string, for `const char*` parameters. */
export function _cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
