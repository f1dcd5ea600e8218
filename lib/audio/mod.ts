/**
 * lib/audio — soundsock's audio engine: miniaudio v0.11.21 through Deno FFI plus a small C shim.
 *
 * Sample format everywhere: interleaved signed 16-bit PCM (Int16Array) with
 * `{ sampleRate, channels }`. Importing this module loads no native code; the library is
 * loaded (and built, if missing) on first use.
 *
 * @example Play a song
 * ```ts
 * import { decodeStream, openPcmSink } from "./lib/audio/mod.ts";
 * await using song = await decodeStream("songs/x.mp3");
 * await using sink = await openPcmSink({ sampleRate: song.sampleRate, channels: song.channels });
 * for await (const pcm of song) await sink.write(pcm);
 * await sink.drain();
 * ```
 *
 * @module
 */

export { AudioDecodeError, AudioDeviceError, AudioLibraryError } from "./errors.ts";
export { DEFAULT_LIBRARY_PATH, ensureNativeLibrary } from "./build.ts";
export type { EnsureNativeLibraryOptions } from "./build.ts";
export { closeAudioLib, loadAudioLib } from "./ffi.ts";
export { AUDIO_BACKENDS, listDevices } from "./devices.ts";
export type { AudioBackend, AudioDevice, DeviceList, ListDevicesOptions } from "./devices.ts";
export type { DeviceOptions, DeviceStats } from "./_device.ts";
export { Player } from "./player.ts";
export type { PlayerOptions, PlayerWaitOptions } from "./player.ts";
export { Recorder } from "./recorder.ts";
export type { RecorderOptions } from "./recorder.ts";
export { decodeBytes, decodeFile, decodeStream, detectCodec, probeSong } from "./decode.ts";
export type { Codec, DecodedAudio, DecodeOptions, DecodeStream, SongInfo } from "./decode.ts";
export { Mp3PushDecoder, openPushDecoder, WavPushDecoder } from "./push_decoder.ts";
export type { PushDecoder, PushDecoderOptions } from "./push_decoder.ts";
export { DECODER_DELAY, Mp3FrameSplitter, mp3Trim, scanMp3 } from "./mp3_frames.ts";
export type { Mp3Frame, Mp3Scan, Mp3Tag } from "./mp3_frames.ts";
export { isPcm16, isWav, parseWavHeader, readWav, wavHeader, WavWriter } from "./wav.ts";
export type { WavData, WavHeader, WavHeaderResult, WavWriterOptions } from "./wav.ts";
export { openPcmSink } from "./sink.ts";
export type { PcmSink, PcmSinkOptions } from "./sink.ts";
