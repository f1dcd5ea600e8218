/**
 * The radio flags udp-server and tls-server share (`--radio-codec`, `--bitrate`) and their
 * check: an Opus station on a machine without libopus falls back to PCM, said once.
 *
 * @module
 */

import type { FlagSpec } from "./flags.ts";
import type { RadioCodec } from "../station/encoder.ts";
import { CodecLibraryError, loadOpus } from "../codec/mod.ts";

/** Radio flags. */
export const RADIO_FLAGS = {
  "radio-codec": {
    type: "string",
    default: "opus",
    choices: ["opus", "pcm"],
    description: "Radio format: Opus 48 kHz stereo, or PCM s16le 48 kHz stereo (readable in " +
      "Wireshark).",
  },
  bitrate: {
    type: "number",
    default: 128_000,
    min: 6000,
    max: 510_000,
    valueName: "BIT/S",
    description: "Radio Opus bitrate.",
  },
} as const satisfies Record<string, FlagSpec>;

/** What the radio flags resolve to. */
export interface RadioSettings {
  radioCodec: RadioCodec;
  bitrate: number;
  /** Set when `opus` was asked for and libopus is missing: say it once. */
  warning?: string;
}

/** Resolves the flags; `opus` without libopus becomes `pcm` with a warning. */
export function radioSettings(flags: { "radio-codec": string; bitrate: number }): RadioSettings {
  const bitrate = flags.bitrate;
  if (flags["radio-codec"] === "pcm") return { radioCodec: "pcm", bitrate };
  try {
    loadOpus();
    return { radioCodec: "opus", bitrate };
  } catch (error) {
    if (!(error instanceof CodecLibraryError)) throw error;
    return {
      radioCodec: "pcm",
      bitrate,
      warning: `${error.message}; the radio falls back to PCM (s16le 48 kHz stereo)`,
    };
  }
}
