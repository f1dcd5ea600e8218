/**
 * udp-client: list songs, play a song on demand, or listen to the radio over UDP, with
 * reception statistics at the end. See `udp-client --help`.
 *
 * @module
 */

import {
  AUDIO_OUTPUT_FLAGS,
  type CommandSpec,
  escapePeerText as peer,
  EventLog,
  ExitCode,
  outputOpener,
  printDevices,
  runMain,
  startCommand,
  UsageError,
} from "../lib/cli/mod.ts";
import { parseAddress } from "../lib/net/udp_socket.ts";
import { type ClientNotice, listenRadio, listSongs, playSong } from "../lib/udp/client.ts";
import { formatReport, statsJson } from "../lib/udp/reception_stats.ts";
import { impairmentFromFlags, SIM_FLAGS } from "../lib/udp/sim_flags.ts";

/** Command-line declaration of udp-client. */
export const SPEC = {
  name: "udp-client",
  summary: "Play a song or the radio from a udp-server, and report what the network did.",
  usage: ["HOST:PORT (--song NAME|INDEX | --radio | --list) [options]"],
  positionals: { min: 0, max: 1 },
  flags: {
    song: {
      type: "string",
      valueName: "NAME|INDEX",
      description: "Play this song from its start.",
    },
    radio: { type: "boolean", description: "Listen to the radio (joins at the live position)." },
    list: { type: "boolean", description: "Print the server's songs and exit." },
    buffer: {
      type: "number",
      default: 200,
      min: 0,
      max: 10_000,
      valueName: "MS",
      description: "Jitter buffer: wait this long for late or reordered packets.",
    },
    ...AUDIO_OUTPUT_FLAGS,
    "stats-json": { type: "boolean", description: "Print the statistics as JSON on stdout." },
    timeout: {
      type: "number",
      default: 5,
      min: 0.1,
      max: 3600,
      integer: false,
      valueName: "S",
      description: "Give up when nothing arrives for this long.",
    },
    seconds: {
      type: "number",
      min: 0.1,
      integer: false,
      valueName: "S",
      description: "Radio: stop after this many seconds (wall time, whatever the output).",
    },
    ...SIM_FLAGS,
  },
  examples: [
    ["udp-client localhost:9000 --list", "what can I play?"],
    ["udp-client localhost:9000 --song 2", "play the second song"],
    [
      "udp-client localhost:9000 --song 01-morning-arpeggio.mp3 --output song.wav",
      "save what arrives as WAV",
    ],
    [
      "udp-client localhost:9000 --radio --seconds 30 --stats-json",
      "30 s of radio, then JSON statistics",
    ],
    [
      "udp-client localhost:9000 --song 1 --sim-loss 10 --sim-reorder 5 --sim-seed 3",
      "see loss and reordering",
    ],
  ],
  notes: [
    "Statistics print on stderr at the end (END, Ctrl+C, --seconds, --timeout or the server's " +
    "BYE); ended_by says which (end, interrupted, seconds, timeout, server_bye). " +
    "--stats-json prints the same rows under the same names.",
  ],
} as const satisfies CommandSpec;

/** Runs udp-client with `args`; resolves to the exit status. */
export async function main(args: string[], signal: AbortSignal): Promise<number> {
  const { flags, positionals, out, helped } = startCommand(SPEC, args);
  if (helped) return ExitCode.OK;
  if (flags["list-devices"]) {
    await printDevices(flags, out);
    return ExitCode.OK;
  }
  const modes = [flags.song !== undefined, flags.radio, flags.list].filter(Boolean).length;
  if (modes !== 1) throw new UsageError("choose exactly one of --song NAME, --radio, --list");
  if (positionals.length !== 1) throw new UsageError("missing HOST:PORT of the server");
  if (flags.output === "-" && flags["stats-json"]) {
    throw new UsageError("--output - and --stats-json both write to stdout; choose one");
  }
  if (flags.seconds !== undefined && !flags.radio) throw new UsageError("--seconds is for --radio");
  let server;
  try {
    server = parseAddress(positionals[0]!);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  using log = await EventLog.openOptional(flags.log);
  const impairment = impairmentFromFlags(flags);
  const base = { signal, log, timeoutMs: flags.timeout * 1000 };

  if (flags.list) {
    const songs = await listSongs(server, base);
    const width = String(songs.length).length;
    for (const s of songs) {
      const mmss = `${Math.floor(s.durationMs / 60000)}:${
        String(Math.round(s.durationMs / 1000) % 60).padStart(2, "0")
      }`;
      out.stdout(
        `${String(s.index).padStart(width)}. ${
          peer(s.title)
        }  (${mmss}, ${s.codec}, ${s.size} bytes)`,
      );
    }
    return ExitCode.OK;
  }

  const options = {
    ...base,
    bufferMs: flags.buffer,
    impairment,
    maxSeconds: flags.seconds,
    openOutput: outputOpener(flags, out, signal),
    onNotice: (n: ClientNotice) => {
      if (n.type === "retry") out.info(`no answer yet, asking again (try ${n.attempt})`);
      if (n.type === "stream") {
        out.info(
          `Playing ${
            peer(n.info.title)
          }: ${n.info.codec}, ${n.info.sampleRate} Hz, ${n.info.channels} ch, ${
            (n.info.durationMs / 1000).toFixed(1)
          } s`,
        );
      }
      if (n.type === "now_playing") out.info(`Now playing: ${peer(n.nowPlaying.title)}`);
    },
  };
  const report = flags.song !== undefined
    ? await playSong(server, flags.song, options)
    : await listenRadio(server, options);
  out.info(
    `\nReception statistics (${flags.song !== undefined ? `song ${flags.song}` : "radio"}):`,
  );
  out.info(formatReport(report));
  if (flags["stats-json"]) out.stdout(JSON.stringify(statsJson(report)));
  if (report.ending === "interrupted") return ExitCode.INTERRUPTED;
  if (report.ending === "timeout" && flags.song !== undefined) {
    out.error(`the stream stopped: nothing arrived for ${flags.timeout} s`);
    return ExitCode.ERROR;
  }
  if (report.ending === "server_bye" && flags.song !== undefined) {
    out.error(
      `the server ended the stream${report.serverReason ? `: ${report.serverReason}` : ""}`,
    );
    return ExitCode.ERROR;
  }
  return ExitCode.OK;
}

if (import.meta.main) await runMain(main, SPEC);
