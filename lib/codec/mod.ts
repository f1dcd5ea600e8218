/**
 * lib/codec — the station's codec and resampling stages: Opus (libopus) and a streaming
 * resampler to 48 kHz stereo (libsoxr), both Debian libraries loaded at run time with Deno FFI.
 *
 * ## Design note
 *
 * **Opus.** Debian's `libopus0` (`libopus.so.0`, 1.3.1 on Debian 12) is opened lazily with
 * `Deno.dlopen` ({@linkcode loadOpus}); `SOUNDSOCK_LIBOPUS` overrides the path. A missing
 * library throws {@linkcode CodecLibraryError} `Cannot load libopus: … Install it with:
 * apt-get install libopus0`. No headers are needed (no `libopus-dev`): the prototypes and the
 * request codes are libopus's stable ABI. The one catch is `opus_encoder_ctl` /
 * `opus_decoder_ctl` (bitrate, complexity, FEC, lookahead), which are variadic: Deno FFI only
 * makes fixed-argument calls, and calling a variadic function through a fixed prototype is
 * undefined behaviour that only happens to work on x86-64 / Linux arm64 (it breaks on Apple
 * arm64, where variadic arguments go on the stack). So our native shim
 * (native/soundsock_audio.c) has two tiny non-variadic wrappers, `ss_opus_ctl_set` /
 * `ss_opus_ctl_get`, that `dlopen("libopus.so.0")` themselves (the loader hands back the same
 * instance Deno opened, so encoder pointers are shared) and let the C compiler make the
 * variadic call. The shim links nothing new and still loads on a machine without libopus.
 *
 * **Resampling.** Measured against ffmpeg's `aresample=resampler=soxr` on the songs (float
 * input, SNR after the best integer alignment; bench/resampler_compare.c, and the same soxr
 * figures through {@linkcode Resampler} in the tests):
 *
 * | implementation                       | 22.05 k mono WAV      | 44.1 k FLAC           | 44.1 k MP3            |
 * | ------------------------------------ | --------------------- | --------------------- | --------------------- |
 * | miniaudio linear, lpfOrder 0 / 4 / 8 | 39.5 / 35.2 / 42.1 dB | 49.3 / 40.1 / 35.9 dB | 32.6 / 26.2 / 22.3 dB |
 * | speexdsp quality 8 / 10              | 92.0 / 76.8 dB        | 104.9 / 90.1 dB       | 117.1 / 121.0 dB      |
 * | **libsoxr HQ, passband 0.91**        | **96.6 dB**           | **109.9 dB**          | **131.8 dB**          |
 *
 * miniaudio's linear resampler cannot reach the 60 dB target at any `lpfOrder` (≤
 * MA_MAX_FILTER_ORDER = 8): linear interpolation leaves images, and its IIR low-pass adds
 * phase distortion (a higher order scores worse against a linear-phase reference). speexdsp
 * passes (its quality-10 gap is mostly its wider passband, 0.975 vs 0.91), but needs manual
 * latency trimming and flushing and was 2–5× slower than soxr in the same harness. libsoxr
 * (Debian `libsoxr0`) is what ffmpeg's reference itself uses: with ffmpeg's settings (SOXR_HQ,
 * 20-bit precision, linear phase, passband end 0.91 — flat to 20 kHz from 44.1 kHz) the output
 * matches ffmpeg to ≥ 96 dB, lengths are exact (`round(in × 48000 / inRate)`, as ffmpeg), and
 * soxr removes its own filter delay. 48 kHz input is passed through bit-exact.
 *
 * **Cost** (bench/codec.ts, 2-core VM): one 48 kHz stereo 128 kbit/s Opus station takes
 * 0.69–0.70 % of a core (143× real time; 0.77–0.81× the CPU of `ffmpeg -c:a libopus`); decoding
 * it 0.23–0.26 %. The resampler runs at 1190–3000× real time in 100 ms blocks (0.67–1.13× the CPU
 * of ffmpeg's `aresample=soxr`).
 *
 * @example A song to Opus packets at the station format
 * ```ts
 * import { OpusEncoder, Resampler } from "./lib/codec/mod.ts";
 * using rs = new Resampler({ inRate: 44_100, inChannels: 2 });
 * using enc = await OpusEncoder.create({ channels: 2, bitrate: 128_000, frameMs: 20 });
 * const pcm48 = rs.process(new Int16Array(4410 * 2)); // Float32Array, 48 kHz stereo
 * // cut pcm48 into enc.frameSize * 2 samples and enc.encode() each frame
 * ```
 *
 * @module
 */

export { CodecLibraryError, OpusError } from "./errors.ts";
export { loadOpus, loadSoxr, opusVersion, soxrVersion } from "./ffi.ts";
export {
  OPUS_FRAME_MS,
  OPUS_MAX_FRAME_SAMPLES,
  OPUS_SAMPLE_RATE,
  OpusDecoder,
  OpusEncoder,
  opusPacketSamples,
} from "./opus.ts";
export type {
  OpusApplication,
  OpusDecoderOptions,
  OpusEncoderOptions,
  OpusFrameMs,
} from "./opus.ts";
export { expectedOutputFrames, floatToS16, OUT_CHANNELS, OUT_RATE, Resampler } from "./resample.ts";
export type { ResamplerOptions } from "./resample.ts";
