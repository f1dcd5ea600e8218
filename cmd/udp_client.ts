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
  formatPlaybackStatus,
  formatSongTable,
  outputOpener,
  PLAY_TIME_FLAGS,
  printDevices,
  runMain,
  startCommand,
  UsageError,
} from "../lib/cli/mod.ts";
import { DEFAULT_UDP_PORT, parseAddress } from "../lib/net/udp_socket.ts";
import { type ClientNotice, listenRadio, listSongs, playSong } from "../lib/udp/client.ts";
import { formatReport, statsJson } from "../lib/udp/reception_stats.ts";
import { impairmentFromFlags, SIM_FLAGS } from "../lib/udp/sim_flags.ts";
import { renderReport, ReportFile, SessionTimeline } from "../lib/report/mod.ts";

/** Command-line declaration of udp-client. */
export const SPEC = {
  name: "udp-client",
  summary: "Play a song or the radio from a udp-server, and report what the network did.",
  usage: ["[HOST[:PORT]] (--song NAME|INDEX | --radio | --list) [options]"],
  positionals: { min: 0, max: 1 },
  flags: {
    server: {
      type: "string",
      valueName: "HOST[:PORT]",
      description: "The udp-server, also accepted as the first argument (port 9000 when left out).",
    },
    song: {
      type: "string",
      valueName: "NAME|INDEX",
      description: "Play this song from its start.",
    },
    radio: { type: "boolean", description: "Listen to the radio (joins at the live position)." },
    list: { type: "boolean", description: "Print the server's songs and exit." },
    buffer: {
      type: "string",
      valueName: "MS|auto",
      description: "Jitter buffer: wait this long for late or reordered packets (default 200; " +
        "a live broadcast 40; auto: the smallest that keeps live underruns under 0.05 %).",
    },
    ...AUDIO_OUTPUT_FLAGS,
    "stats-json": { type: "boolean", description: "Print the statistics as JSON on stdout." },
    report: {
      type: "string",
      valueName: "FILE.html",
      path: true,
      description: "Write the session's timeline (arrivals, lateness, jitter, losses, gaps, " +
        "buffer level) and statistics as one self-contained HTML file.",
    },
    timeout: {
      type: "number",
      default: 5,
      min: 0.1,
      max: 3600,
      integer: false,
      valueName: "S",
      description: "Give up when nothing arrives for this long.",
    },
    ...PLAY_TIME_FLAGS,
    ...SIM_FLAGS,
  },
  examples: [
    ["deno task udp-client localhost --list", "what can I play? (port 9000)"],
    ["deno task udp-client localhost:9000 --song 2", "play the second song"],
    [
      "deno task udp-client localhost --song 01-morning-arpeggio.mp3 -o song.wav",
      "save what arrives as WAV",
    ],
    [
      "deno task udp-client localhost --radio --seconds 30 --stats-json",
      "30 s of radio, then JSON statistics",
    ],
    [
      "deno task udp-client localhost --song 1 --sim-loss 10 --sim-reorder 5 --sim-seed 3",
      "see loss and reordering",
    ],
  ],
  notes: [
    "Statistics print on stderr at the end (END, Ctrl+C, --seconds, --timeout or the server's " +
    "BYE); ended_by says which (end, interrupted, seconds, timeout, server_bye). " +
    "--stats-json prints the same rows under the same names.",
  ],
} as const satisfies CommandSpec;

/** `--buffer MS|auto` as client options; a bad value is a usage error. */
function bufferOptions(
  text: string | undefined,
): { bufferMs?: number; liveBufferMs?: number | "auto" } {
  if (text === undefined) return {};
  if (text === "auto") return { liveBufferMs: "auto" };
  const ms = Number(text);
  // The same words as every numeric flag's (lib/cli/flags.ts), plus `auto`.
  if (text.trim() === "" || !Number.isFinite(ms)) {
    throw new UsageError(`--buffer: "${text}" is neither a number of ms nor auto`);
  }
  if (!Number.isInteger(ms)) throw new UsageError(`--buffer: "${text}" is not a whole number`);
  if (ms < 0) throw new UsageError(`--buffer: ${ms} is below the minimum 0`);
  if (ms > 10_000) throw new UsageError(`--buffer: ${ms} is above the maximum 10000`);
  return { bufferMs: ms, liveBufferMs: ms };
}

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
  if (positionals.length === 1 && flags.server !== undefined) {
    throw new UsageError("give the server once: HOST[:PORT] or --server HOST[:PORT]");
  }
  const address = positionals[0] ?? flags.server;
  if (address === undefined) throw new UsageError("missing HOST[:PORT] of the server");
  if (flags.output === "-" && flags["stats-json"]) {
    throw new UsageError("--output - and --stats-json both write to stdout; choose one");
  }
  if (flags.seconds !== undefined && flags.list) throw new UsageError("--seconds is for playing");
  let server;
  try {
    server = parseAddress(address, DEFAULT_UDP_PORT);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  using log = await EventLog.openOptional(flags.log);
  using reportFile = flags.report === undefined ? undefined : await ReportFile.create(flags.report);
  const timeline = reportFile && new SessionTimeline();
  const impairment = impairmentFromFlags(flags);
  const base = { signal, log, timeoutMs: flags.timeout * 1000 };

  if (flags.list) {
    const songs = await listSongs(server, base);
    for (const line of formatSongTable(songs)) out.stdout(line);
    return ExitCode.OK;
  }

  let nowPlaying: { title: string; started: number } | undefined;
  const options = {
    ...base,
    ...bufferOptions(flags.buffer),
    impairment,
    maxSeconds: flags.seconds,
    openOutput: outputOpener(flags, out, signal),
    ...(timeline ? { timeline } : {}),
    onNotice: (n: ClientNotice) => {
      if (n.type === "progress") out.status(formatPlaybackStatus(n.progress));
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
      // The server repeats NOW_PLAYING (a lost one must not hide a song change): say it once.
      // (The same title again from a later start is the song played again.)
      if (n.type === "now_playing") {
        const started = performance.now() - n.nowPlaying.positionMs;
        const same = nowPlaying?.title === n.nowPlaying.title &&
          Math.abs(nowPlaying.started - started) < 2000;
        if (!same) out.info(`Now playing: ${peer(n.nowPlaying.title)}`);
        nowPlaying = { title: n.nowPlaying.title, started };
      }
    },
  };
  const report = flags.song !== undefined
    ? await playSong(server, flags.song, options)
    : await listenRadio(server, options);
  out.clearStatus();
  if (report.ending === "end" && flags.song !== undefined && report.song !== undefined) {
    out.info(`Song ended: ${report.song}`);
  }
  out.info(
    `\nReception statistics (${flags.song !== undefined ? `song ${flags.song}` : "radio"}):`,
  );
  out.info(formatReport(report));
  if (flags["stats-json"]) out.stdout(JSON.stringify(statsJson(report)));
  if (reportFile && timeline) {
    await reportFile.write(renderReport(timeline, {
      title: `udp-client ${args.join(" ")}`,
      stats: statsJson(report),
      expected: report.expected,
      ...(flags.song !== undefined ? { base: 0 } : {}),
    }));
    out.info(`Report written to ${reportFile.path}`);
  }
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
