/**
 * `tls-client` — lists, plays, saves songs from tls-server; listens to and requests songs on
 * its radio.
 *
 * @module
 */

import {
  AUDIO_OUTPUT_FLAGS,
  type CommandSpec,
  EventLog,
  ExitCode,
  PLAY_TIME_FLAGS,
  printDevices,
  resolveUserPath,
  runMain,
  startCommand,
  UsageError,
} from "../lib/cli/mod.ts";
import type { AudioBackend } from "../lib/audio/devices.ts";
import { didYouMean } from "../lib/cli/suggest.ts";
import { normalizePin } from "../lib/tls/certs.ts";
import { parseServerAddress } from "../lib/tls/connect.ts";
import { loadCa } from "../lib/tls/pem_files.ts";
import {
  type ClientContext,
  expectArgs,
  listCommand,
  nowCommand,
  playCommand,
  queueCommand,
  radioCommand,
  requestCommand,
} from "../lib/tls/client_commands.ts";
import { shellCommand } from "../lib/tls/client_shell.ts";
import { relayRadioCommand } from "../lib/relay/radio_command.ts";
import { parseLiveBuffer } from "../lib/live/live_output.ts";
import { ReportFile, SessionTimeline } from "../lib/report/mod.ts";

/** Command-line declaration. */
export const SPEC = {
  name: "tls-client",
  summary: "Play, save and request songs from a tls-server, and listen to its radio.",
  usage: [
    "list [options]",
    "play SONG [--save FILE] [options]",
    "get SONG [FILE] [options]",
    "radio [options]",
    "request SONG [options]",
    "queue | now [options]",
    "shell [options]",
  ],
  positionals: { min: 0, max: 3 },
  flags: {
    server: {
      type: "string",
      default: "localhost:8443",
      valueName: "HOST[:PORT]",
      description: "The tls-server (port 8443 when left out).",
    },
    ca: {
      type: "string",
      default: "certs/ca.crt",
      valueName: "FILE",
      path: true,
      description: "CA certificate that signed the server's (chain and host name are verified).",
    },
    pin: {
      type: "string",
      valueName: "SHA256",
      description: "Accept only the server certificate with this SHA-256 (instead of --ca).",
    },
    insecure: {
      type: "boolean",
      description: "Do not verify the server at all (prints a warning).",
    },
    save: {
      type: "string",
      valueName: "FILE",
      path: true,
      description: "play: also save the song (only if its SHA-256 matches).",
    },
    report: {
      type: "string",
      valueName: "FILE.html",
      path: true,
      description: "radio: write a picture of the session (arrival lateness, buffer level, " +
        "statistics) as one self-contained HTML file.",
    },
    relay: {
      type: "boolean",
      description: "radio: join the server's relay overlay and pass the radio on to the " +
        "listeners it assigns (the server needs --relay-fanout).",
    },
    "relay-port": {
      type: "number",
      default: 0,
      min: 0,
      max: 65535,
      valueName: "PORT",
      description: "radio --relay: port to accept assigned listeners on (0 = any free port).",
    },
    "relay-host": {
      type: "string",
      valueName: "ADDR",
      description: "radio --relay: address to bind and to give the server for children " +
        "(default: bind all, the server tells the address it sees).",
    },
    buffer: {
      type: "string",
      valueName: "MS|auto",
      description: "radio of a live broadcast: the delay kept against arrival jitter " +
        "(default 40; auto: the smallest that keeps underruns under 0.05 %).",
    },
    "stats-json": {
      type: "boolean",
      description: "radio: print the statistics (latency, drift) as JSON on stdout.",
    },
    ...AUDIO_OUTPUT_FLAGS,
    ...PLAY_TIME_FLAGS,
    timeout: {
      type: "number",
      default: 10,
      min: 0.1,
      max: 3600,
      integer: false,
      valueName: "S",
      description: "Connect and answer timeout.",
    },
  },
  examples: [
    ["deno task tls-client list", "numbered song list"],
    ["deno task tls-client play 2", "play song 2 while it downloads"],
    ["deno task tls-client play nocturne --save nocturne.mp3", "play and save (SHA-256 checked)"],
    ["deno task tls-client get nocturne /tmp/", "only save, into /tmp/"],
    ["deno task tls-client radio", "listen to the radio (Ctrl+C stops)"],
    ["deno task tls-client radio --seconds 30 -o radio.wav", "30 s of radio into a WAV file"],
    ["deno task tls-client radio --relay --relay-port 9100", "listen and relay to others"],
    ["deno task tls-client request 3 && deno task tls-client queue", "request a song, see queue"],
    ["deno task tls-client shell", "a prompt with history: list, play, get, radio… (help inside)"],
    ["deno task tls-client list --server music.lan:8443 --pin 7647…", "trust one certificate"],
  ],
  notes: [
    "SONG is a file name, a name without extension, or a number from `list`.",
    "--pin SHA256 is the server certificate's SHA-256 (printed by `deno task certs`, or " +
    "`openssl x509 -in server.crt -noout -fingerprint -sha256`); it replaces CA and host name " +
    "checks. --insecure checks nothing.",
    "Exit 3: the song does not exist or the server is full.",
  ],
} as const satisfies CommandSpec;

const SUBCOMMANDS: Record<string, [min: number, max: number]> = {
  list: [0, 0],
  play: [1, 1],
  get: [1, 2],
  radio: [0, 0],
  request: [1, 1],
  queue: [0, 0],
  now: [0, 0],
  shell: [0, 0],
};

/** Entry point. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  const { flags, positionals, out, helped } = startCommand(SPEC, args);
  if (helped) return ExitCode.OK;
  if (flags["list-devices"]) {
    await printDevices(flags, out);
    return ExitCode.OK;
  }
  if (positionals.length === 0) {
    throw new UsageError(`missing command (${Object.keys(SUBCOMMANDS).join(", ")})`);
  }
  const [command, ...rest] = positionals as [string, ...string[]];
  const arity = SUBCOMMANDS[command];
  if (!arity) {
    const names = Object.keys(SUBCOMMANDS);
    throw new UsageError(
      `unknown command "${command}"${didYouMean(command, names)} — one of ${names.join(", ")}`,
    );
  }
  expectArgs(command, rest, ...arity);
  if (flags.relay && command !== "radio") throw new UsageError("--relay works with radio");
  if (flags.report !== undefined && (command !== "radio" || flags.relay)) {
    throw new UsageError("--report works with radio (without --relay)");
  }
  if ((flags.buffer !== undefined || flags["stats-json"]) && command !== "radio") {
    throw new UsageError("--buffer and --stats-json work with radio");
  }
  let liveBufferMs: number | "auto" | undefined;
  try {
    liveBufferMs = flags.buffer === undefined ? undefined : parseLiveBuffer(flags.buffer);
  } catch (error) {
    throw new UsageError(`--buffer: ${(error as Error).message}`);
  }
  if (flags.save !== undefined && command !== "play") {
    throw new UsageError("--save works with play (use get SONG FILE to only save)");
  }
  let address;
  try {
    address = parseServerAddress(flags.server);
  } catch (error) {
    throw new UsageError(`--server: ${(error as Error).message}`);
  }
  let pin: string | undefined;
  if (flags.pin !== undefined) {
    pin = normalizePin(flags.pin);
    if (!pin) throw new UsageError("--pin: expected 64 hex digits (a SHA-256)");
  }
  if (flags.insecure) {
    // Even with --quiet: a security warning is never hidden.
    out.warn(
      "--insecure: the server's certificate is NOT verified; anyone on the path can " +
        "impersonate it",
      { always: true },
    );
  }
  const ca = pin || flags.insecure
    ? {}
    : await loadCa(flags.ca, { explicit: args.some((a) => a === "--ca" || a.startsWith("--ca=")) });
  using log = await EventLog.openOptional(flags.log);
  // Opened before connecting: a path that cannot be written fails at once.
  using reportFile = flags.report === undefined ? undefined : await ReportFile.create(flags.report);
  const ctx: ClientContext = {
    ...(reportFile
      ? {
        report: {
          file: reportFile,
          timeline: new SessionTimeline(),
          title: `tls-client ${args.join(" ")}`,
        },
      }
      : {}),
    address,
    connect: { ...ca, pin, insecure: flags.insecure, timeoutMs: flags.timeout * 1000 },
    out,
    log,
    signal,
    audio: {
      output: flags.output,
      backend: flags["audio-backend"] as AudioBackend,
      device: flags.device,
      maxSeconds: flags.seconds,
      liveBufferMs,
    },
    statsJson: flags["stats-json"],
  };
  log.event("start", { command, args: rest, server: flags.server });
  switch (command) {
    case "list":
      return await listCommand(ctx);
    case "play":
      return await playCommand(ctx, rest[0]!, { save: flags.save });
    case "get":
      return await playCommand(ctx, rest[0]!, {
        play: false,
        save: resolveUserPath(rest[1] ?? "."),
      });
    case "radio":
      return flags.relay
        ? await relayRadioCommand(ctx, { port: flags["relay-port"], host: flags["relay-host"] })
        : await radioCommand(ctx);
    case "request":
      return await requestCommand(ctx, rest[0]!);
    case "queue":
      return await queueCommand(ctx);
    case "now":
      return await nowCommand(ctx);
    default:
      return await shellCommand(ctx);
  }
}

if (import.meta.main) await runMain(main, SPEC);
