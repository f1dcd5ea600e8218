/**
 * One place where every tool that plays decides where PCM goes: a device (`--audio-backend`,
 * `--device`), a WAV file (`--output FILE.wav`) or raw s16le PCM on stdout (`--output -`).
 *
 * @module
 */

import type { AudioBackend } from "./devices.ts";
import { Player } from "./player.ts";
import { WavWriter } from "./wav.ts";

/** Where a tool's audio goes; see {@linkcode openPcmSink}. */
export interface PcmSink extends AsyncDisposable {
  /** Stream sample rate. */
  readonly sampleRate: number;
  /** Stream channels. */
  readonly channels: number;
  /** For the user: "pulse: Built-in Audio", "WAV file out.wav", "raw PCM (s16le) on stdout". */
  readonly description: string;
  /** True when backend "auto" fell back to the null backend (nothing is audible). */
  readonly fellBackToNull: boolean;
  /** The device player, when the sink is a device. */
  readonly player: Player | undefined;
  /** Writes interleaved PCM (waits for room on a device). */
  write(pcm: Int16Array, options?: { signal?: AbortSignal }): Promise<void>;
  /** Waits until everything written is played / flushed. */
  drain(options?: { signal?: AbortSignal }): Promise<void>;
  /** Closes the device / finishes the WAV header. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@linkcode openPcmSink}. */
export interface PcmSinkOptions {
  /** Stream sample rate in Hz. */
  sampleRate: number;
  /** Stream channels. */
  channels: number;
  /**
   * "FILE.wav" writes a WAV file, "-" raw PCM to stdout; unset plays on a device.
   * @default undefined
   */
  output?: string;
  /**
   * Device backend.
   * @default "auto"
   */
  backend?: AudioBackend;
  /**
   * Device name or "#index".
   * @default undefined (default device)
   */
  device?: string;
  /**
   * Device period in ms.
   * @default 50
   */
  periodMs?: number;
  /** Cancels opening. */
  signal?: AbortSignal;
}

/**
 * Opens a device player, a WAV file writer, or raw PCM to stdout behind one interface.
 * @throws {AudioDeviceError} device not found / cannot be opened
 */
export async function openPcmSink(options: PcmSinkOptions): Promise<PcmSink> {
  const { sampleRate, channels, output } = options;
  if (output !== undefined) {
    const w = await WavWriter.create(output, { sampleRate, channels });
    return {
      sampleRate,
      channels,
      description: output === "-" ? "raw PCM (s16le) on stdout" : `WAV file ${output}`,
      fellBackToNull: false,
      player: undefined,
      write: (pcm) => w.write(pcm),
      drain: () => Promise.resolve(),
      close: () => w.close(),
      [Symbol.asyncDispose]: () => w.close(),
    };
  }
  const p = await Player.open({
    sampleRate,
    channels,
    backend: options.backend,
    device: options.device,
    periodMs: options.periodMs,
    signal: options.signal,
  });
  const description = p.fellBackToNull
    ? "null backend (no audio device found; nothing is audible)"
    : `${p.backend}: ${p.deviceName}`;
  return {
    sampleRate,
    channels,
    description,
    fellBackToNull: p.fellBackToNull,
    player: p,
    write: (pcm, o) => p.write(pcm, o),
    drain: (o) => p.drain(o),
    close: () => p.close(),
    [Symbol.asyncDispose]: () => p.close(),
  };
}
