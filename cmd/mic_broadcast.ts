/**
 * mic-broadcast: a live microphone (or a virtual one) to many listeners over UDP and/or TLS.
 * See `mic-broadcast --help`.
 *
 * @module
 */

import {
  type CommandSpec,
  EventLog,
  ExitCode,
  runMain,
  startCommand,
  UsageError,
} from "../lib/cli/mod.ts";
import { accessLogger } from "../lib/cli/access_log.ts";
import { HostPortError, parseHostPort } from "../lib/net/host_port.ts";
import { loadServerIdentity } from "../lib/tls/pem_files.ts";
import { startBroadcast } from "../lib/live/broadcast.ts";
import { FileSource, type LiveSource, openMicSource, ToneSource } from "../lib/live/sources.ts";

/** Command-line declaration of mic-broadcast. */
export const SPEC = {
  name: "mic-broadcast",
  summary: "Broadcast a microphone live to udp-client --radio and tls-client radio listeners.",
  usage: ["--udp HOST:PORT [--tls HOST:PORT] [--device NAME|#INDEX | --tone HZ | --input FILE]"],
  flags: {
    udp: {
      type: "string",
      valueName: "HOST:PORT",
      description: "Serve UDP listeners here (port 0 = any free port).",
    },
    tls: {
      type: "string",
      valueName: "HOST:PORT",
      description: "Serve TLS listeners here (port 0 = any free port).",
    },
    cert: {
      type: "string",
      default: "certs/server.crt",
      valueName: "FILE",
      path: true,
      description: "With --tls: server certificate (PEM).",
    },
    key: {
      type: "string",
      default: "certs/server.key",
      valueName: "FILE",
      path: true,
      description: "With --tls: server private key (PEM).",
    },
    device: { type: "string", valueName: "NAME", description: "Capture device name or #index." },
    "list-devices": { type: "boolean", description: "List capture devices and exit." },
    "audio-backend": {
      type: "string",
      default: "auto",
      choices: ["auto", "pulse", "alsa", "null"],
      description: "Audio backend for capture.",
    },
    tone: {
      type: "number",
      min: 1,
      max: 23_999,
      integer: false,
      valueName: "HZ",
      description: "Broadcast a sine tone instead of a microphone (a virtual microphone).",
    },
    input: {
      type: "string",
      valueName: "FILE",
      path: true,
      description: "Broadcast a song file (mp3, wav, flac) looped in real time instead.",
    },
    rate: {
      type: "number",
      default: 48_000,
      min: 8000,
      max: 48_000,
      valueName: "HZ",
      description: "Sample rate (Opus needs 48000).",
    },
    channels: {
      type: "number",
      default: 1,
      min: 1,
      max: 2,
      description: "Channels captured and sent (1 or 2).",
    },
    frame: {
      type: "string",
      default: "10",
      choices: ["10", "20"],
      valueName: "MS",
      description: "Opus frame (and packet) duration in ms.",
    },
    codec: {
      type: "string",
      default: "opus",
      choices: ["opus", "pcm"],
      description: "Opus, or PCM s16le (readable in Wireshark).",
    },
    bitrate: {
      type: "number",
      min: 6000,
      max: 510_000,
      valueName: "BIT/S",
      description: "Opus bitrate (default 64000 per channel).",
    },
    "max-listeners": {
      type: "number",
      default: 32,
      min: 1,
      max: 100_000,
      valueName: "N",
      // The servers call it --max-clients: the same flag here.
      aliases: ["max-clients"],
      description: "Most listeners per transport; more get REJECT server_full.",
    },
    "max-per-ip": {
      type: "number",
      default: 16,
      min: 0,
      max: 100_000,
      valueName: "N",
      description: "Most listeners from one IP address (0: no limit); more get REJECT busy.",
    },
    "sim-clock-ppm": {
      type: "number",
      default: 0,
      min: -1000,
      max: 1000,
      integer: false,
      valueName: "PPM",
      description: "With --tone / --input: a capture clock this many ppm fast (negative: " +
        "slow), to test listeners' drift correction.",
    },
    "ready-json": {
      type: "boolean",
      description: 'When listening, print {"event":"ready","udpPort","tlsPort"} on stdout.',
    },
  },
  examples: [
    ["deno task mic-broadcast --udp 0.0.0.0:9100", "the default microphone to the LAN over UDP"],
    [
      "deno task udp-client 127.0.0.1:9100 --radio",
      "listen (another terminal): plays live, shows the latency",
    ],
    [
      "deno task mic-broadcast --tone 440 --udp 127.0.0.1:9100 --tls 127.0.0.1:9443",
      "a 440 Hz test tone over UDP and TLS (certs from deno task certs)",
    ],
    [
      "deno task mic-broadcast --input songs/01-morning-arpeggio.mp3 --frame 20 --udp :9100",
      "a song looped as a virtual microphone, 20 ms frames",
    ],
    ["deno task mic-broadcast --list-devices", "list capture devices"],
  ],
  notes: [
    "Each packet carries its capture time (STREAM_INFO captureEpochUs, docs/PROTOCOL.md §5.4); " +
    "listeners join at the live edge (no stale audio) and show the latency.",
    "Ctrl+C stops the broadcast cleanly (listeners are told BYE / ERROR shutdown).",
  ],
} as const satisfies CommandSpec;

function address(flag: string, text: string) {
  try {
    return parseHostPort(text.startsWith(":") ? `127.0.0.1${text}` : text, undefined, {
      allowPortZero: true,
    });
  } catch (error) {
    if (error instanceof HostPortError) throw new UsageError(`--${flag}: ${error.message}`);
    throw error;
  }
}

/** Runs mic-broadcast with `args`; resolves to the exit status. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  const { flags, out, helped } = startCommand(SPEC, args);
  if (helped) return ExitCode.OK;
  const backend = flags["audio-backend"] as "auto" | "pulse" | "alsa" | "null";
  if (flags["list-devices"]) {
    const { listDevices } = await import("../lib/audio/devices.ts");
    const list = await listDevices({ backend });
    out.stdout(`Capture devices (${list.backend} backend):`);
    for (const d of list.capture) {
      out.stdout(`  #${d.index}  ${d.name}${d.isDefault ? "  (default)" : ""}`);
    }
    if (list.capture.length === 0) out.stdout("  (none — use --tone HZ or --input FILE)");
    out.stdout("Choose one with --device NAME or --device #INDEX.");
    return ExitCode.OK;
  }
  if (!flags.udp && !flags.tls) throw new UsageError("give --udp HOST:PORT and/or --tls HOST:PORT");
  const chosen = [flags.tone !== undefined, flags.input !== undefined, flags.device !== undefined];
  if (chosen.filter(Boolean).length > 1) {
    throw new UsageError("choose one source: --device, --tone or --input");
  }
  const codec = flags.codec as "opus" | "pcm";
  if (codec === "opus" && flags.rate !== 48_000) {
    throw new UsageError("Opus is 48 kHz: use --rate 48000 (or --codec pcm)");
  }
  const udp = flags.udp === undefined ? undefined : address("udp", flags.udp);
  const tlsAddr = flags.tls === undefined ? undefined : address("tls", flags.tls);
  const identity = tlsAddr ? await loadServerIdentity(flags.cert, flags.key) : undefined;
  const frameMs = Number(flags.frame) as 10 | 20;
  const channels = flags.channels as 1 | 2;
  const blockFrames = flags.rate * frameMs / 1000;
  const common = { sampleRate: flags.rate, channels, blockFrames };
  const clockPpm = flags["sim-clock-ppm"];
  if (clockPpm !== 0 && flags.tone === undefined && flags.input === undefined) {
    throw new UsageError("--sim-clock-ppm needs --tone or --input (a device has its own clock)");
  }
  // The log first: once a capture device is open, nothing may fail before the broadcast owns it.
  using log = await EventLog.openOptional(flags.log);
  log.observe(accessLogger(out));
  const source: LiveSource = flags.tone !== undefined
    ? new ToneSource(flags.tone, { ...common, clockPpm })
    : flags.input !== undefined
    ? await FileSource.open(flags.input, { ...common, clockPpm })
    : await openMicSource({ ...common, device: flags.device, backend, signal });
  const broadcast = await startBroadcast({
    source,
    codec,
    frameMs,
    bitrate: flags.bitrate,
    udp,
    tls: tlsAddr && identity && { ...tlsAddr, ...identity },
    maxListeners: flags["max-listeners"],
    maxPerIp: flags["max-per-ip"],
    log,
    signal,
    onFallback: (reason) => out.warn(reason),
  });
  const udpPort = broadcast.udp?.address.port;
  const tlsPort = broadcast.tls?.addr.port;
  const where = [
    udp && `UDP ${udp.hostname}:${udpPort}`,
    tlsAddr && `TLS ${tlsAddr.hostname}:${tlsPort}`,
  ].filter(Boolean).join(", ");
  out.info(
    `mic-broadcast: ${source.description}, ${codec === "opus" ? `Opus ${frameMs} ms` : "PCM"} ` +
      `${flags.rate} Hz ${channels} ch, on ${where}, up to ${flags["max-listeners"]} listeners`,
  );
  if (flags["ready-json"]) {
    out.stdout(JSON.stringify({
      event: "ready",
      ...(udpPort === undefined ? {} : { udpPort }),
      ...(tlsPort === undefined ? {} : { tlsPort }),
    }));
  }
  await broadcast.finished;
  const s = broadcast.station.stats;
  out.info(
    `mic-broadcast stopped: ${s.packets} packets, ${broadcast.udp?.stats.listenersJoined ?? 0} ` +
      `UDP listeners joined, ${
        (broadcast.udp?.stats.rejected ?? 0) + (broadcast.tls?.stats.rejected ?? 0)
      } rejected${
        source.framesLost === undefined ? "" : `, capture lost ${source.framesLost} frames`
      }`,
  );
  return ExitCode.OK;
}

if (import.meta.main) await runMain(main, SPEC);
