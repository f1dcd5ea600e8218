/**
 * The flags every tool that plays shares (`--output`, `--audio-backend`, `--device`,
 * `--list-devices`) and the glue from them to an output. lib/audio (FFI) is imported only
 * when an output is really opened, so tools that do not play start fast.
 *
 * @module
 */

import type { FlagSpec } from "./flags.ts";
import type { Output } from "./output.ts";
import type { PcmFormat } from "../media/pcm_convert.ts";
import type { PcmOutput } from "../udp/client.ts";

/** Audio output flags. */
export const AUDIO_OUTPUT_FLAGS = {
  output: {
    type: "string",
    short: "o",
    valueName: "FILE.wav|-",
    path: true,
    description: "Write a WAV file, or raw s16le PCM to stdout with -, instead of playing.",
  },
  "audio-backend": {
    type: "string",
    default: "auto",
    choices: ["auto", "pulse", "alsa", "null"],
    description: "Audio backend for playback.",
  },
  device: { type: "string", valueName: "NAME", description: "Playback device name or #index." },
  "list-devices": { type: "boolean", description: "List playback devices and exit." },
} as const satisfies Record<string, FlagSpec>;

/**
 * How long a player runs, the same flag in every tool: wall time from joining or starting,
 * whatever the output (a device that plays slower, or a file written faster, does not change
 * it). `--max-seconds`, tls-client's old name, still works.
 */
export const PLAY_TIME_FLAGS = {
  seconds: {
    type: "number",
    min: 0.1,
    integer: false,
    valueName: "S",
    aliases: ["max-seconds"],
    description: "Stop after S seconds (wall time, whatever the output).",
  },
} as const satisfies Record<string, FlagSpec>;

/** Values of {@linkcode AUDIO_OUTPUT_FLAGS}. */
export interface AudioOutputFlags {
  output: string | undefined;
  "audio-backend": string;
  device: string | undefined;
}

/**
 * An `openOutput` function for the clients: opens the sink the flags describe, and says once
 * on stderr where the sound goes (and if nothing is audible because no device exists).
 */
export function outputOpener(
  flags: AudioOutputFlags,
  out: Output,
  signal: AbortSignal,
): (format: PcmFormat, hints?: { periodMs?: number }) => Promise<PcmOutput> {
  return async (format, hints) => {
    const { openPcmSink } = await import("../audio/sink.ts");
    const sink = await openPcmSink({
      sampleRate: format.sampleRate,
      channels: format.channels,
      output: flags.output,
      backend: flags["audio-backend"] as "auto" | "pulse" | "alsa" | "null",
      device: flags.device,
      periodMs: hints?.periodMs,
      signal,
    });
    announceOutput(out, sink.description, sink.fellBackToNull, format);
    return sink;
  };
}

/**
 * The one line every player prints when its output opens: `Output: pulse: Speakers (48000 Hz,
 * 2 ch)`, or — once, as a warning — that no device exists and nothing will be heard.
 */
export function announceOutput(
  out: Output,
  description: string,
  silent: boolean,
  format?: PcmFormat,
): void {
  if (silent) {
    out.warn(
      "no audio device found: playing to the null device (silent); " +
        "--output FILE.wav keeps the sound",
    );
    return;
  }
  const detail = format ? ` (${format.sampleRate} Hz, ${format.channels} ch)` : "";
  out.info(`Output: ${description}${detail}`);
}

/** Prints the playback devices (`--list-devices`). */
export async function printDevices(flags: AudioOutputFlags, out: Output): Promise<void> {
  const { listDevices } = await import("../audio/devices.ts");
  const list = await listDevices({ backend: flags["audio-backend"] as "auto" });
  out.stdout(`Playback devices (${list.backend} backend):`);
  for (const d of list.playback) {
    out.stdout(`  #${d.index}  ${d.name}${d.isDefault ? "  (default)" : ""}`);
  }
  if (list.playback.length === 0) out.stdout("  (none — the tools will play to the null device)");
  out.stdout("Choose one with --device NAME or --device #INDEX.");
}
