/**
 * udp-server: songs on demand and a radio over UDP. See `udp-server --help`.
 *
 * @module
 */

import { RADIO_FLAGS, radioSettings } from "../lib/cli/radio_flags.ts";
import {
  type CommandSpec,
  EventLog,
  ExitCode,
  runMain,
  startCommand,
  UsageError,
} from "../lib/cli/mod.ts";
import { accessLogger } from "../lib/cli/access_log.ts";
import { parseAddress } from "../lib/net/udp_socket.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { stationSdp } from "../lib/udp/rtp.ts";
import { UdpServer } from "../lib/udp/server.ts";
import { impairmentFromFlags, SIM_FLAGS } from "../lib/udp/sim_flags.ts";

/** Command-line declaration of udp-server. */
export const SPEC = {
  name: "udp-server",
  summary: "Serve songs on demand and a looping radio over UDP (soundsock/2).",
  usage: ["[--host H] [--port P] [--songs DIR] [options]"],
  flags: {
    host: {
      type: "string",
      default: "127.0.0.1",
      description: "Address to listen on (0.0.0.0 or :: to serve the LAN).",
    },
    port: {
      type: "number",
      default: 9000,
      min: 0,
      max: 65535,
      description: "UDP port (0 = any free port).",
    },
    songs: {
      type: "string",
      default: "songs",
      valueName: "DIR",
      path: true,
      description: "Folder of mp3/wav/flac files to serve.",
    },
    "max-clients": {
      type: "number",
      default: 32,
      min: 1,
      max: 100_000,
      description: "Most concurrent streams and radio listeners.",
    },
    "max-per-ip": {
      type: "number",
      default: 16,
      min: 0,
      max: 100_000,
      description: "Most of those from one source IP (any port; IPv6: one /64; 0: no limit).",
    },
    interval: {
      type: "number",
      min: 0,
      max: 60_000,
      integer: false,
      valueName: "MS",
      description:
        "Fixed gap between on-demand packets; 0 = as fast as the client takes. Default: real time.",
    },
    "payload-size": {
      type: "number",
      default: 1200,
      min: 200,
      max: 65_000,
      valueName: "BYTES",
      description: "Largest DATA payload per datagram.",
    },
    "heartbeat-timeout": {
      type: "number",
      default: 10,
      min: 1,
      max: 3600,
      integer: false,
      valueName: "S",
      description: "Drop clients silent for this many seconds.",
    },
    "radio-song": {
      type: "string",
      valueName: "NAME",
      description: "Radio loops this one song instead of the whole library.",
    },
    rtp: {
      type: "string",
      valueName: "HOST:PORT",
      description:
        "Also send the radio as standard RTP (Opus, RFC 7587; L16 for --radio-codec pcm).",
    },
    sdp: {
      type: "string",
      valueName: "FILE",
      path: true,
      description: "With --rtp: write the SDP that players open (ffplay, VLC).",
    },
    ...RADIO_FLAGS,
    ...SIM_FLAGS,
  },
  examples: [
    ["deno task udp-server", "serve the songs/ folder on 127.0.0.1:9000"],
    ["deno task udp-server --songs ~/Music", "serve your own folder (mp3, wav, flac)"],
    ["deno task udp-server --host 0.0.0.0 --max-clients 10", "serve the LAN, at most 10 clients"],
    [
      "deno task udp-server --interval 5 --sim-loss 5 --sim-seed 7",
      "fixed 5 ms pacing, drop 5 % of packets",
    ],
    [
      "deno task udp-server --rtp 127.0.0.1:5004 --sdp radio.sdp",
      "also feed ffplay: ffplay -protocol_whitelist file,udp,rtp -i radio.sdp",
    ],
  ],
  notes: [
    "The radio plays the library in a loop from start-up, whether or not anyone listens.",
    "Ctrl+C stops the server cleanly.",
  ],
} as const satisfies CommandSpec;

/** Runs udp-server with `args`; resolves to the exit status. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  const { flags, out, helped } = startCommand(SPEC, args);
  if (helped) return ExitCode.OK;
  if (flags.sdp && !flags.rtp) throw new UsageError("--sdp needs --rtp HOST:PORT");
  let rtp;
  try {
    rtp = flags.rtp === undefined ? undefined : parseAddress(flags.rtp);
  } catch (error) {
    throw new UsageError(`--rtp: ${(error as Error).message}`);
  }
  const impairment = impairmentFromFlags(flags);
  const radio = radioSettings(flags);
  if (radio.warning) out.warn(radio.warning);
  using log = await EventLog.openOptional(flags.log);
  log.observe(accessLogger(out));
  const catalog = await SongCatalog.open(flags.songs, { signal });
  for (const s of catalog.skipped) out.warn(`skipping ${s.name}: ${s.reason}`);
  const radioSong = flags["radio-song"] === undefined
    ? undefined
    : catalog.get(flags["radio-song"]);
  const server = UdpServer.start({
    catalog,
    hostname: flags.host,
    port: flags.port,
    maxClients: flags["max-clients"],
    maxClientsPerIp: flags["max-per-ip"],
    intervalMs: flags.interval,
    maxPayload: flags["payload-size"],
    heartbeatTimeoutMs: flags["heartbeat-timeout"] * 1000,
    radioSong,
    radioCodec: radio.radioCodec,
    bitrate: radio.bitrate,
    impairment,
    rtp,
    log,
    signal,
  });
  const { hostname, port } = server.address;
  if (rtp && flags.sdp) {
    await Deno.writeTextFile(flags.sdp, stationSdp(rtp, port, radio.radioCodec));
  }
  out.info(
    `udp-server listening on ${hostname.includes(":") ? `[${hostname}]` : hostname}:${port} — ` +
      `${catalog.songs.length} songs, radio on, up to ${flags["max-clients"]} clients`,
  );
  if (impairment) out.info(`simulating: ${JSON.stringify(impairment.options)}`);
  if (rtp) out.info(`RTP feed to ${flags.rtp}${flags.sdp ? ` (SDP in ${flags.sdp})` : ""}`);
  await server.finished;
  const s = server.stats;
  out.info(
    `udp-server stopped: ${s.streamsCompleted}/${s.streamsStarted} streams completed, ` +
      `${s.listenersJoined} radio listeners, ${s.rejected} rejected, ${s.timedOut} timed out, ` +
      `${s.malformed} malformed datagrams ignored`,
  );
  if (impairment) out.info(`simulation injected: ${JSON.stringify(impairment.counts)}`);
  return ExitCode.OK;
}

if (import.meta.main) await runMain(main, SPEC);
