/**
 * What each tls-client subcommand does, on top of {@linkcode TlsSongClient}: formatting for
 * people, playing, saving atomically (the interactive shell is lib/tls/client_shell.ts).
 * cmd/tls_client.ts only parses the command line and calls these.
 *
 * @module
 */

import type { EventLog } from "../cli/event_log.ts";
import { escapePeerText as peer, type Output } from "../cli/output.ts";
import { ExitCode, UsageError } from "../cli/errors.ts";
import type { AudioBackend } from "../audio/devices.ts";
import type { NowPlaying, StreamInfo } from "../wire/messages.ts";
import { announceOutput } from "../cli/audio_flags.ts";
import { formatDuration, formatSongTable } from "../cli/song_table.ts";
import { formatPlaybackStatus, formatTransferStatus } from "../cli/playback_status.ts";
import { join } from "@std/path";
import { AtomicFile } from "../files/atomic_file.ts";
import { savedFileName } from "../files/safe_name.ts";
import { TlsSongClient } from "./client.ts";
import type { ConnectOptions, ServerAddress } from "./connect.ts";
import { Playback } from "./playback.ts";
import type { LiveLatencyReport } from "../live/latency.ts";
import { renderReport, type ReportFile, type SessionTimeline } from "../report/mod.ts";

/** Settings shared by every subcommand. */
export interface ClientContext {
  address: ServerAddress;
  connect: ConnectOptions;
  out: Output;
  log: EventLog;
  signal: AbortSignal;
  /** Audio output settings for play / radio. */
  audio: {
    output?: string;
    backend?: AudioBackend;
    device?: string;
    /** Stop playing after this many seconds. */
    maxSeconds?: number;
    /** radio of a live broadcast: `--buffer MS|auto` (lib/live/live_output.ts). */
    liveBufferMs?: number | "auto";
  };
  /** radio: print the statistics as JSON on stdout at the end (`--stats-json`). */
  statsJson?: boolean;
  /** `radio --report FILE.html`: the session's timeline, written to `file` at the end. */
  report?: { file: ReportFile; timeline: SessionTimeline; title: string };
}

/** The line radio prints at each song change (the title escaped). */
export function formatNowPlaying(n: NowPlaying): string {
  return `Now playing: ${peer(n.title)} (${formatDuration(n.durationMs)}), ${
    n.source === "request" ? "requested" : "random pick"
  }`;
}

/** Connects to the server of `ctx` (verified as `ctx.connect` says) and logs it. */
export async function openClient(ctx: ClientContext): Promise<TlsSongClient> {
  const client = await TlsSongClient.connect(ctx.address, { ...ctx.connect, signal: ctx.signal });
  ctx.log.event("connected", { server: client.server, peerPin: client.peerPin });
  return client;
}

/** `list`: the numbered song list on stdout. */
export async function listCommand(ctx: ClientContext, client?: TlsSongClient): Promise<number> {
  const c = client ?? (await openClient(ctx));
  try {
    const songs = await c.list(ctx.signal);
    for (const line of formatSongTable(songs)) ctx.out.stdout(line);
    return ExitCode.OK;
  } finally {
    if (!client) await c.bye();
  }
}

/** `request SONG`: prints the server's exact answer; exit 3 if the song does not exist. */
export async function requestCommand(
  ctx: ClientContext,
  song: string,
  client?: TlsSongClient,
): Promise<number> {
  const c = client ?? (await openClient(ctx));
  try {
    const r = await c.requestSong(song, ctx.signal);
    ctx.log.event("play_result", { song, ...r });
    ctx.out.stdout(peer(r.message));
    return r.result === "not_found" ? ExitCode.REFUSED : ExitCode.OK;
  } finally {
    if (!client) await c.bye();
  }
}

/** `queue`: the radio's request queue, numbered, next first. */
export async function queueCommand(ctx: ClientContext, client?: TlsSongClient): Promise<number> {
  const c = client ?? (await openClient(ctx));
  try {
    const queue = await c.queue(ctx.signal);
    if (queue.length === 0) ctx.out.stdout("The request queue is empty.");
    queue.forEach((e, i) =>
      ctx.out.stdout(`${i + 1}. ${peer(e.title)} (${formatDuration(e.durationMs)})`)
    );
    return ExitCode.OK;
  } finally {
    if (!client) await c.bye();
  }
}

/** `now`: what the radio is playing and how far it is. */
export async function nowCommand(ctx: ClientContext, client?: TlsSongClient): Promise<number> {
  const c = client ?? (await openClient(ctx));
  try {
    const n = await c.nowPlaying(ctx.signal);
    ctx.out.stdout(`${formatNowPlaying(n)} — at ${formatDuration(n.positionMs)}`);
    return ExitCode.OK;
  } finally {
    if (!client) await c.bye();
  }
}

/** Options of {@linkcode playCommand}. */
export interface PlayCommandOptions {
  /**
   * Save the file here (verified, atomic). A folder gets a file named after the song asked
   * for (see {@linkcode savedFileName}), never a path the server chose.
   */
  save?: string;
  /** Play it (false: only save). @default {true} */
  play?: boolean;
}

/**
 * `play SONG [--save FILE]` and `get SONG [FILE]`: downloads a song, playing it as it arrives
 * and/or saving it only if its SHA-256 matches.
 */
export async function playCommand(
  ctx: ClientContext,
  song: string,
  options: PlayCommandOptions = {},
  client?: TlsSongClient,
): Promise<number> {
  const { out } = ctx;
  const c = client ?? (await openClient(ctx));
  const playing = options.play ?? true;
  // --seconds: wall time from now, or that much audio if the output takes it faster (a file).
  const stop = new AbortController();
  const onAbort = () => stop.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) onAbort();
  const maxSeconds = ctx.audio.maxSeconds;
  let timeUp = false;
  const limit = !playing || maxSeconds === undefined ? undefined : setTimeout(() => {
    timeUp = true;
    stop.abort();
  }, maxSeconds * 1000);
  await using playback = playing ? newPlayback(ctx, stop.signal) : undefined;
  let file: AtomicFile | undefined;
  let info: StreamInfo | undefined;
  let received = 0;
  const started = performance.now();
  using _status = statusLine(ctx.out, () => {
    if (!info) return undefined;
    if (!playback) return formatTransferStatus(received, info.size, performance.now() - started);
    return formatPlaybackStatus({
      positionMs: playback.positionMs,
      durationMs: info.durationMs,
      bufferedMs: playback.deviceQueuedMs,
    });
  });
  try {
    const result = await c.download(song, {
      signal: ctx.signal,
      onInfo: async (i) => {
        info = i;
        ctx.log.event("stream_info", { ...i });
        out.info(
          `${playing ? "Playing" : "Downloading"} ${peer(i.title)} (${
            formatDuration(i.durationMs)
          }, ${i.codec}, ` +
            `${Math.round((i.size ?? 0) / 1024)} KiB)`,
        );
        if (options.save) {
          // Into a folder: a safe base name of the song asked for, inside that folder. A file
          // path the user typed is used as given.
          const target = (await isDirectory(options.save))
            ? join(options.save, savedFileName(song, i.title, i.codec))
            : options.save;
          file = await AtomicFile.create(target);
        }
        playback?.start(i, true);
      },
      onData: async (payload) => {
        received += payload.length;
        playback?.data(payload);
        await file?.write(payload);
      },
    });
    const ms = performance.now() - started;
    ctx.log.event("download_done", { title: result.info.title, bytes: result.end.bytes, ms });
    out.debug(
      `received ${result.end.bytes} bytes in ${Math.round(ms)} ms ` +
        `(${(result.end.bytes / 1048576 / (ms / 1000)).toFixed(1)} MiB/s)`,
    );
  } catch (error) {
    await file?.[Symbol.asyncDispose]();
    throw error;
  } finally {
    if (!client) await c.bye();
  }
  // The download goes on after the time is up, so --save still gets the whole (verified) file.
  if (file && info?.sha256) {
    await file.commit(info.sha256);
    out.info(`Saved ${peer(file.path)} (SHA-256 verified)`);
  } else if (file) {
    await file[Symbol.asyncDispose]();
    throw new Error(`Not saving "${peer(file.path)}": the server sent no SHA-256`);
  }
  try {
    if (playback && !timeUp) await playback.finish();
  } catch (error) {
    if (!timeUp) throw error;
  } finally {
    clearTimeout(limit);
    ctx.signal.removeEventListener("abort", onAbort);
  }
  out.clearStatus();
  if (timeUp || playback?.reachedLimit) out.info(`Stopped after ${maxSeconds} s (--seconds)`);
  else if (playback && info && !ctx.signal.aborted) out.info(`Song ended: ${peer(info.title)}`);
  return ExitCode.OK;
}

/** Most radio bytes queued for playback before reading waits (≈ 4 min of 128 kbit/s MP3). */
const RADIO_QUEUE_BYTES = 4 * 1024 * 1024;

/**
 * `radio`: plays the station and prints each new song until Ctrl+C, or until `--seconds`
 * of wall time from joining (or that much audio, if written sooner) — whatever the output: a
 * device that plays slower than the station, or not at all, is not waited for (issue #9 D2).
 */
export async function radioCommand(ctx: ClientContext): Promise<number> {
  const { out } = ctx;
  await using c = asAsyncDisposable(await openClient(ctx));
  // Ctrl+C or the wall-clock limit: ends the network read, the device wait and the pacing.
  const stop = new AbortController();
  const onAbort = () => stop.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) onAbort();
  const maxSeconds = ctx.audio.maxSeconds;
  let timeUp = false;
  const limit = maxSeconds === undefined ? undefined : setTimeout(() => {
    timeUp = true;
    stop.abort();
  }, maxSeconds * 1000);
  await using playback = newPlayback(ctx, stop.signal);
  using _status = statusLine(
    ctx.out,
    () =>
      playback.positionMs > 0
        ? formatPlaybackStatus({
          positionMs: playback.positionMs,
          bufferedMs: playback.deviceQueuedMs,
        })
        : undefined,
  );
  let pendingInfo: StreamInfo | undefined;
  let packets = 0;
  let firstSeq = 0;
  let firstTsUs = 0;
  /** A live capture's STREAM_INFO captureEpochUs (mic-broadcast): latency is measured. */
  let captureEpochUs: number | undefined;
  const joined = performance.now();
  let first = true;
  try {
    for await (const event of c.client.radio(stop.signal)) {
      if (event.type === "now_playing") {
        out.info(formatNowPlaying(event.nowPlaying));
        ctx.log.event("now_playing", { ...event.nowPlaying });
      } else if (event.type === "stream_info") {
        pendingInfo = event.info;
        captureEpochUs = event.info.captureEpochUs;
      } else if (event.type === "data") {
        if (pendingInfo) {
          // Joining mid-song the first packets are not a song start: no priming to trim.
          playback.start(pendingInfo, event.songStart);
          pendingInfo = undefined;
        }
        if (first) {
          first = false;
          const ms = Math.round(performance.now() - joined);
          ctx.log.event("first_data", { ms });
          out.debug(`first audio ${ms} ms after joining`);
          firstSeq = event.sequence;
          firstTsUs = event.timestampUs;
        }
        packets++;
        if (ctx.report) {
          const t = ctx.report.timeline;
          t.arrival(event.sequence, event.timestampUs, performance.now(), "ok");
          // Received but not yet played: media time since the first packet, less what played.
          const receivedMs = (event.timestampUs - firstTsUs) / 1000;
          t.level(Math.max(0, receivedMs - playback.positionMs), playback.deviceUnderruns ?? 0);
        }
        playback.data(
          event.payload,
          captureEpochUs === undefined ? undefined : captureEpochUs + event.timestampUs,
        );
        // The radio is live: read on only when playback keeps up (it follows the media
        // clock), so a server sending faster than real time meets TCP backpressure.
        await playback.room(RADIO_QUEUE_BYTES);
        if (playback.reachedLimit) break;
      }
    }
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  } finally {
    clearTimeout(limit);
    ctx.signal.removeEventListener("abort", onAbort);
  }
  out.clearStatus();
  const deviceUnderruns = playback.deviceUnderruns;
  const live = playback.liveLatency;
  if (live) {
    ctx.log.event("live_latency", { ...live });
    out.info(
      `Live: latency capture → output median ${live.medianMs} ms, p95 ${live.p95Ms} ms, ` +
        `p99 ${live.p99Ms} ms (${live.packets} packets), drift ${live.driftPpm} ppm`,
    );
  }
  ctx.log.event("radio_stopped", {
    framesPlayed: playback.framesPlayed,
    deviceUnderruns: deviceUnderruns ?? null,
  });
  if (timeUp || playback.reachedLimit) out.info(`Stopped after ${maxSeconds} s (--seconds)`);
  out.info(
    deviceUnderruns === undefined
      ? "Radio stopped."
      : `Radio stopped. device_underruns: ${deviceUnderruns}`,
  );
  if (ctx.statsJson) {
    // The names of udp-client's --stats-json keys (lib/udp/reception_stats.ts).
    out.stdout(JSON.stringify({
      packets,
      frames_played: playback.framesPlayed,
      device_underruns: deviceUnderruns ?? 0,
      ...(live ? liveStatsJson(live) : {}),
      ended_by: ctx.signal.aborted
        ? "interrupted"
        : timeUp || playback.reachedLimit
        ? "seconds"
        : "end",
    }));
  }
  if (ctx.report) {
    // TCP delivers every packet in order: the timeline shows arrival lateness and the buffer.
    await ctx.report.file.write(renderReport(ctx.report.timeline, {
      title: ctx.report.title,
      stats: {
        packets,
        frames_played: playback.framesPlayed,
        device_underruns: deviceUnderruns ?? 0,
        ended_by: ctx.signal.aborted
          ? "interrupted"
          : timeUp || playback.reachedLimit
          ? "seconds"
          : "end",
      },
      base: firstSeq,
      expected: packets,
    }));
    out.info(`Report: ${peer(ctx.report.file.path)}`);
  }
  return ExitCode.OK;
}

/** A live capture's statistics as udp-client's --stats-json keys. */
function liveStatsJson(live: LiveLatencyReport): Record<string, number> {
  const o: Record<string, number> = {
    live_packets: live.packets,
    live_buffer_ms: live.bufferMs ?? 0,
    latency_median_ms: live.medianMs,
    latency_p95_ms: live.p95Ms,
    latency_p99_ms: live.p99Ms,
    latency_max_ms: live.maxMs,
  };
  if (live.device) {
    o.latency_device_median_ms = live.device.medianMs;
    o.latency_device_p95_ms = live.device.p95Ms;
    o.latency_device_p99_ms = live.device.p99Ms;
  }
  o.drift_ppm = live.driftPpm;
  if (live.framesDropped !== undefined) o.drift_dropped = live.framesDropped;
  if (live.framesInserted !== undefined) o.drift_inserted = live.framesInserted;
  if (live.framesSkipped !== undefined) o.drift_skipped = live.framesSkipped;
  if (live.levelMs !== undefined) o.drift_level_ms = live.levelMs;
  if (live.targetMs !== undefined) o.drift_target_ms = live.targetMs;
  if (live.devicePeriodMs !== undefined) o.device_period_ms = live.devicePeriodMs;
  return o;
}

function newPlayback(ctx: ClientContext, signal = ctx.signal): Playback {
  const a = ctx.audio;
  return new Playback({
    output: a.output,
    backend: a.backend,
    device: a.device,
    maxMs: a.maxSeconds === undefined ? undefined : a.maxSeconds * 1000,
    liveBufferMs: a.liveBufferMs,
    signal,
    onOpen: (description, silent, format) => announceOutput(ctx.out, description, silent, format),
  });
}

/**
 * Redraws a status line every 250 ms on a terminal while in scope (nothing is drawn off a
 * terminal or with --quiet); `line` returns undefined while there is nothing to show.
 */
function statusLine(out: Output, line: () => string | undefined): Disposable {
  const timer = out.showsStatus
    ? setInterval(() => {
      const text = line();
      if (text !== undefined) out.status(text);
    }, 250)
    : undefined;
  return {
    [Symbol.dispose]() {
      clearInterval(timer);
      out.clearStatus();
    },
  };
}

function asAsyncDisposable(client: TlsSongClient) {
  return { client, [Symbol.asyncDispose]: () => client.bye() };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** Checks a subcommand's positional count. */
export function expectArgs(command: string, args: string[], min: number, max: number): void {
  if (args.length < min) throw new UsageError(`${command}: missing argument`);
  if (args.length > max) throw new UsageError(`${command}: unexpected argument "${args[max]}"`);
}
