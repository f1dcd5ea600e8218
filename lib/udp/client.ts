/**
 * The UDP client: asks a udp-server for the song list, a song, or the radio, and plays what
 * arrives as it arrives. Receiving and playout are separate paths: the receive loop only
 * validates, counts and buffers (it never waits for the output), and the playout loop takes
 * packets from the jitter buffer and writes PCM, so a slow device cannot stall the socket.
 *
 * @module
 */

import type { EventLog } from "../cli/event_log.ts";
import { escapePeerText } from "../cli/output.ts";
import { MediaPlayout, type PcmWriter } from "../media/playout.ts";
import type { PcmFormat } from "../media/pcm_convert.ts";
import { opusFrameCount } from "../station/encoder.ts";
import { mp3PayloadSamples } from "../audio/mp3_frames.ts";
import { decodeDatagram, type Frame, FrameError, FrameType } from "../wire/frame.ts";
import {
  encodeControl,
  MessageError,
  type NowPlaying,
  readAccept,
  readChallenge,
  readEnd,
  readError,
  readNowPlaying,
  readReject,
  readSessionControl,
  readSongList,
  readStreamInfo,
  type SongEntry,
  type StreamInfo,
} from "../wire/messages.ts";
import { formatAddress, type UdpAddress, UdpSocket } from "../net/udp_socket.ts";
import type { Impairment } from "./impairment.ts";
import { type BufferedPacket, JitterBuffer } from "./jitter_buffer.ts";
import { LatencyMeter, wallClockUs } from "../live/latency.ts";
import {
  adjustBlock,
  AutoBuffer,
  DriftController,
  liveGapWaitMs,
  livePeriodMs,
} from "../live/playout_control.ts";
import { hasDeviceCounters, LiveDevice } from "../live/live_device.ts";
import { SequenceGuard } from "./sequence_guard.ts";
import { type ReceptionReport, ReceptionStats } from "./reception_stats.ts";
import type { SessionTimeline } from "../report/timeline.ts";
import { ACK_EVERY } from "./flow_control.ts";

/** The server refused: unknown song, server full, bad request. Exit status 3. */
export class RequestRefusedError extends Error {
  /** Exit status: refused by the peer. */
  readonly exitCode = 3;
  /** Creates the error; `message` (the server's text) is printed with controls escaped. */
  constructor(message: string) {
    super(escapePeerText(message));
    this.name = "RequestRefusedError";
  }
}

/** The server did not answer. */
export class NoAnswerError extends Error {
  /** Creates the error; `message` is user-facing. */
  constructor(message: string) {
    super(message);
    this.name = "NoAnswerError";
  }
}

/** Something the client reports while it runs (the command prints these). */
export type ClientNotice =
  | { type: "accepted"; op: string; streamId: number }
  | { type: "stream"; info: StreamInfo }
  | { type: "now_playing"; nowPlaying: NowPlaying }
  | { type: "retry"; attempt: number }
  | { type: "progress"; progress: PlaybackProgress };

/** Where playback is, reported about 4 times a second while packets play (a status line). */
export interface PlaybackProgress {
  /** Media time of the packet just played, from the stream's start (ms). */
  positionMs: number;
  /** That packet's own timestamp (µs, the sender's media clock: the live edge on the radio). */
  timestampUs: number;
  /** Length of the song (on demand), or undefined for the radio. */
  durationMs?: number;
  /** Audio waiting in the jitter buffer (ms). */
  bufferedMs: number;
  /** Packets missing so far (the highest sequence seen, minus what arrived). */
  lost: number;
}

/** A live capture's default jitter buffer (ms): Jamulus-like LAN jitter plus a frame. */
export const LIVE_BUFFER_MS = 40;

/** Least time between two progress notices. */
const PROGRESS_EVERY_MS = 250;

/** An output the client writes PCM to and finishes at the end. */
export interface PcmOutput extends PcmWriter {
  /** Waits until everything written has played. */
  drain?(): Promise<void>;
  /** The device, when the output is one: its underruns are reported as `device_underruns`. */
  readonly player?:
    | {
      readonly underruns: number;
      readonly queuedFrames?: number;
      readonly framesConsumed?: number;
    }
    | undefined;
  /** Releases the output. */
  close?(): void | Promise<void>;
}

/** Options shared by the client calls. */
export interface UdpClientOptions {
  /** Stops the client (Ctrl+C): it says BYE and reports. */
  signal: AbortSignal;
  /** Event log. */
  log: EventLog;
  /** Jitter buffer depth in ms. @default {200} */
  bufferMs?: number;
  /**
   * A live capture's jitter buffer (STREAM_INFO captureEpochUs, docs/PROTOCOL.md §5.4): ms, or
   * `auto` (lib/live/playout_control.ts AutoBuffer: the smallest size with < 0.05 % simulated
   * underruns, at most 200 ms).
   * @default {LIVE_BUFFER_MS}
   */
  liveBufferMs?: number | "auto";
  /** End when nothing arrives for this long (ms). @default {5000} */
  timeoutMs?: number;
  /** Receive-side impairment (`--sim-*`). */
  impairment?: Impairment;
  /**
   * Opens the PCM output with the first stream's format; without it nothing is decoded. A live
   * capture passes the device period it wants (lib/live/playout_control.ts livePeriodMs).
   */
  openOutput?: (format: PcmFormat, hints?: { periodMs?: number }) => Promise<PcmOutput>;
  /**
   * Radio: stop after this many seconds of wall time from ACCEPT, whatever the output: what is
   * still buffered or queued on the device is not waited for.
   */
  maxSeconds?: number;
  /** Progress reports. */
  onNotice?: (notice: ClientNotice) => void;
  /** Records arrivals, late packets, gaps and buffer levels for a report (`--report`). */
  timeline?: SessionTimeline;
}

/** Wait this long for an answer before sending a REQUEST again. */
const REQUEST_RETRY_MS = 1000;
/** Sends of one REQUEST in a row without hearing anything before giving up. */
const REQUEST_TRIES = 3;
/** Sends of one REQUEST in all, the re-sends that echo a CHALLENGE's cookie included. */
const REQUEST_SENDS = 6;

/** The cookie of the server's last CHALLENGE: echoed in every later REQUEST to it. */
interface Handshake {
  cookie?: string;
}

/** Resolves `localhost` and IP literals; other names through the system's DNS. */
export async function resolveServer(server: UdpAddress): Promise<UdpAddress> {
  const h = server.hostname;
  if (h === "localhost") return { hostname: "127.0.0.1", port: server.port };
  if (/^[\d.]+$/.test(h) || h.includes(":")) return server;
  try {
    const [ip] = await Deno.resolveDns(h, "A");
    if (ip) return { hostname: ip, port: server.port };
  } catch (cause) {
    throw new Error(`Cannot resolve "${h}": ${(cause as Error).message}`, { cause });
  }
  throw new Error(`Cannot resolve "${h}": no address`);
}

function bindFor(server: UdpAddress): UdpSocket {
  return UdpSocket.bind(server.hostname.includes(":") ? "::" : "0.0.0.0", 0);
}

/**
 * Fetches the whole song list, page by page (each page is one datagram).
 *
 * @throws {NoAnswerError} if the server does not answer after 3 tries.
 */
export async function listSongs(
  server: UdpAddress,
  options: UdpClientOptions,
): Promise<SongEntry[]> {
  const to = await resolveServer(server);
  using socket = bindFor(to);
  const songs: SongEntry[] = [];
  const buffer = new Uint8Array(65536);
  const handshake: Handshake = {};
  let total = Infinity;
  while (songs.length < total) {
    const offset = songs.length;
    const frame = await requestOnce(
      socket,
      to,
      { op: "list", offset },
      buffer,
      options,
      (f) => f.type === FrameType.SONG_LIST || f.type === FrameType.ERROR,
      handshake,
    );
    if (frame.type === FrameType.ERROR) throw new RequestRefusedError(readError(frame).message);
    const page = readSongList(frame);
    if (page.offset !== offset) continue; // a late answer to an earlier try
    total = page.total;
    if (page.songs.length === 0 && songs.length < total) {
      throw new Error(
        "Server sent an empty song list page (its --payload-size is too small for one entry)",
      );
    }
    songs.push(...page.songs);
  }
  return songs;
}

/**
 * Sends a request and waits for the first frame `accept` takes (docs/PROTOCOL.md §5.0): a
 * CHALLENGE makes it send the request again at once with the challenge's cookie; silence for
 * 1 s makes it send again. It gives up after 3 sends in a row without any answer, or 6 in all.
 */
async function requestOnce(
  socket: UdpSocket,
  to: UdpAddress,
  body: object,
  buffer: Uint8Array,
  options: UdpClientOptions,
  accept: (frame: Frame) => boolean,
  handshake: Handshake = {},
): Promise<Frame> {
  let silent = 0;
  let sends = 0;
  while (sends < REQUEST_SENDS && silent < REQUEST_TRIES) {
    options.signal.throwIfAborted();
    if (silent > 0) options.onNotice?.({ type: "retry", attempt: silent + 1 });
    const payload = handshake.cookie === undefined ? body : { ...body, cookie: handshake.cookie };
    await socket.send(encodeControl(FrameType.REQUEST, payload, { maxPayload: 1200 }), to);
    sends++;
    const deadline = performance.now() + REQUEST_RETRY_MS;
    let challenged = false;
    while (!challenged && performance.now() < deadline) {
      const got = await receiveUntil(socket, buffer, deadline, options.signal);
      if (!got) break;
      if (formatAddress(got.from) !== formatAddress(to)) continue;
      try {
        const frame = decodeDatagram(got.data);
        if (frame.type === FrameType.CHALLENGE) {
          // A repeat of the cookie already echoed answers an earlier send: keep waiting.
          const { cookie } = readChallenge(frame);
          if (cookie !== handshake.cookie) challenged = true;
          handshake.cookie = cookie;
        } else if (accept(frame)) {
          return { ...frame, payload: frame.payload.slice() };
        }
      } catch (error) {
        if (!(error instanceof FrameError || error instanceof MessageError)) throw error;
      }
    }
    silent = challenged ? 0 : silent + 1;
  }
  throw new NoAnswerError(
    silent < REQUEST_TRIES
      ? `${formatAddress(to)} answered ${sends} requests with CHALLENGE only (is it udp-server?)`
      : `No answer from ${
        formatAddress(to)
      } after ${REQUEST_TRIES} tries (is udp-server running there?)`,
  );
}

/** Receives one datagram or resolves null at the deadline (the socket stays usable). */
async function receiveUntil(
  socket: UdpSocket,
  buffer: Uint8Array,
  deadline: number,
  signal: AbortSignal,
): Promise<{ data: Uint8Array; from: UdpAddress } | null> {
  const wait = deadline - performance.now();
  if (wait <= 0) return null;
  pendingReceive.set(socket, pendingReceive.get(socket) ?? socket.receive(buffer));
  const pending = pendingReceive.get(socket)!;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const result = await Promise.race([
    pending,
    new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), wait)),
    new Promise<"abort">((resolve) => {
      onAbort = () => resolve("abort");
      signal.addEventListener("abort", onAbort, { once: true });
    }),
  ]);
  clearTimeout(timer);
  signal.removeEventListener("abort", onAbort!);
  if (result === "abort") throw signal.reason;
  if (result === "timeout") return null;
  pendingReceive.delete(socket);
  return result;
}

/** A receive started but not yet consumed survives a timeout: the next wait picks it up. */
const pendingReceive = new WeakMap<
  UdpSocket,
  Promise<{ data: Uint8Array; from: UdpAddress } | null>
>();

/**
 * Streams one song from its start and plays it as it arrives. Resolves with the reception
 * report when END arrives (and playout finished), on timeout, or when interrupted.
 *
 * @throws {RequestRefusedError} for an unknown song or a full server.
 * @throws {NoAnswerError} if the server never answers.
 */
export function playSong(
  server: UdpAddress,
  song: string,
  options: UdpClientOptions,
): Promise<ReceptionReport> {
  return receiveStream(server, { op: "song", song }, options);
}

/** Joins the radio and plays it until interrupted, `maxSeconds`, or a timeout. */
export function listenRadio(
  server: UdpAddress,
  options: UdpClientOptions,
): Promise<ReceptionReport> {
  return receiveStream(server, { op: "radio" }, options);
}

async function receiveStream(
  server: UdpAddress,
  request: { op: "song"; song: string } | { op: "radio" },
  options: UdpClientOptions,
): Promise<ReceptionReport> {
  const to = await resolveServer(server);
  const { log } = options;
  using socket = bindFor(to);
  const stats = new ReceptionStats();
  stats.timeline = options.timeline;
  /** Newest media timestamp accepted into the jitter buffer (the status line's buffer depth). */
  let newestTimestampUs = 0;
  if (request.op === "song") stats.base = 0;
  const jitter = new JitterBuffer({ bufferMs: options.bufferMs ?? 200 });
  // DATA implausibly far from the stream is dropped; an on-demand stream starts at 0, 0.
  const guard = new SequenceGuard<Frame>();
  if (request.op === "song") guard.expect(0, 0);
  const buffer = new Uint8Array(65536);
  const serverKey = formatAddress(to);
  log.event("request", { server: serverKey, ...request });
  if (options.impairment) log.event("simulation", { ...options.impairment.options });

  // Handshake: REQUEST until ACCEPT (or a refusal); the answer may be lost, so retry.
  const first = await requestOnce(
    socket,
    to,
    request,
    buffer,
    options,
    (f) => f.type === FrameType.ACCEPT || f.type === FrameType.REJECT || f.type === FrameType.ERROR,
  );
  if (first.type === FrameType.REJECT) {
    const r = readReject(first);
    log.event("rejected", { ...r });
    throw new RequestRefusedError(r.reason);
  }
  if (first.type === FrameType.ERROR) {
    const e = readError(first);
    log.event("error", { ...e });
    if (e.code === "not_found") throw new RequestRefusedError(e.message);
    throw new Error(`Server error: ${escapePeerText(e.message)}`);
  }
  const accept = readAccept(first);
  const streamId = first.streamId;
  const token = accept.token;
  if (token === undefined) throw new Error("Server sent ACCEPT without a session token");
  const heartbeatMs = accept.heartbeatMs ?? 1000;
  options.onNotice?.({ type: "accepted", op: accept.op, streamId });
  log.event("accepted", { op: accept.op, maxPayload: accept.maxPayload, heartbeatMs, streamId });

  // State shared by the two paths.
  const infos: { start: number; info: StreamInfo }[] = [];
  let ended = false;
  let endGrace: ReturnType<typeof setTimeout> | undefined;
  let ending: ReceptionReport["ending"] = "end";
  /** The reason in the server's BYE or ERROR. */
  let serverReason: string | undefined;
  let lastArrival = performance.now();
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  // HEARTBEAT and BYE carry the session's token, so nobody else can send them for us (§5.0).
  const sendControl = (type: typeof FrameType.HEARTBEAT | typeof FrameType.BYE, body?: object) =>
    socket.send(encodeControl(type, { token, ...body }, { streamId }), to);
  let highest = -1;
  let sinceAck = 0;
  const ack = () => void sendControl(FrameType.HEARTBEAT, { ack: highest + 1 });

  /** Why the last invalid STREAM_INFO was refused. */
  let badInfo: string | undefined;

  /** A live capture: its capture epoch, and `--buffer auto`'s chooser. */
  let liveEpochUs: number | undefined;
  let autoBuffer: AutoBuffer | undefined;
  let autoPackets = 0;

  // Accepted DATA: statistics, acknowledgements, the jitter buffer.
  let highestExt = -1;
  const onData = (frame: Frame, arrivalMs: number) => {
    if (autoBuffer && liveEpochUs !== undefined) {
      const arrivalUs = wallClockUs() - (performance.now() - arrivalMs) * 1000;
      autoBuffer.onPacket(liveEpochUs + frame.timestamp, arrivalUs);
      if (++autoPackets % 50 === 0 && autoBuffer.ready) jitter.bufferMs = autoBuffer.targetMs;
    }
    const ext = stats.onData(frame.sequence, frame.timestamp, arrivalMs, frame.payload.length);
    if (ext === undefined) return; // duplicate
    if (ext > highestExt) {
      highestExt = ext;
      highest = frame.sequence; // acknowledgements name the sender's own sequence numbers
    }
    if (stats.sentBySender !== undefined && stats.received >= stats.sentBySender) {
      clearTimeout(endGrace);
      ended = true;
    }
    if (++sinceAck >= ACK_EVERY) {
      sinceAck = 0;
      ack();
    }
    const packet: BufferedPacket = {
      seq: ext,
      seq32: frame.sequence,
      timestampUs: frame.timestamp,
      flags: frame.flags,
      payload: frame.payload.slice(),
      arrivalMs,
    };
    if (jitter.insert(packet) === "late") {
      stats.late++;
      options.timeline?.latePacket(ext, arrivalMs);
    } else newestTimestampUs = Math.max(newestTimestampUs, packet.timestampUs);
    poke();
  };

  const onFrame = (frame: Frame, arrivalMs: number) => {
    if (frame.streamId !== streamId && frame.type !== FrameType.ACCEPT) {
      stats.malformed++;
      return;
    }
    switch (frame.type) {
      case FrameType.DATA: {
        // Forged DATA far from the stream (PROTOCOL.md §6) is counted and dropped; the stream
        // re-synchronises only on a consistent run after silence (lib/udp/sequence_guard.ts).
        const verdict = guard.check(frame.sequence, frame.timestamp, arrivalMs, () => ({
          ...frame,
          payload: frame.payload.slice(),
        }));
        stats.implausible = guard.implausible;
        if (verdict.kind === "implausible") return;
        if (verdict.kind === "resync") {
          const first = verdict.replay[0]!.sequence;
          stats.rebase(first);
          jitter.resyncClock();
          log.event("resync", { sequence: first, packets: verdict.replay.length });
          for (const f of verdict.replay) onData(f, arrivalMs);
          return;
        }
        onData(frame, arrivalMs);
        return;
      }
      case FrameType.STREAM_INFO: {
        let info: StreamInfo;
        try {
          info = readStreamInfo(frame);
        } catch (error) {
          // Counted as malformed (it may be forged), and remembered: a stream whose every
          // STREAM_INFO is invalid ends in this error, not in silence.
          badInfo = (error as Error).message;
          throw error;
        }
        // STREAM_INFO's sequence field is the first DATA sequence of the stream it describes.
        if (!infos.some((i) => i.start === frame.sequence)) {
          infos.push({ start: frame.sequence, info });
          infos.sort((a, b) => a.start - b.start);
          if (infos.length > 8) infos.shift();
          options.onNotice?.({ type: "stream", info });
          log.event("stream_info", { start: frame.sequence, ...info });
          // What the song will send: a stream cut short counts the rest as lost.
          if (request.op === "song" && info.packets !== undefined) stats.announced = info.packets;
          if (info.captureEpochUs !== undefined && liveEpochUs === undefined) {
            // A live capture: a short jitter buffer (or an adaptive one), set before its DATA.
            liveEpochUs = info.captureEpochUs;
            const live = options.liveBufferMs ?? LIVE_BUFFER_MS;
            if (live === "auto") autoBuffer = new AutoBuffer();
            jitter.bufferMs = live === "auto" ? LIVE_BUFFER_MS : live;
            jitter.gapWaitMs = liveGapWaitMs;
            log.event("live", { bufferMs: live });
          }
        }
        return;
      }
      case FrameType.NOW_PLAYING: {
        const np = readNowPlaying(frame);
        options.onNotice?.({ type: "now_playing", nowPlaying: np });
        log.event("now_playing", { ...np });
        return;
      }
      case FrameType.END: {
        const end = readEnd(frame);
        if (stats.sentBySender !== undefined) return; // END is sent twice
        stats.sentBySender = end.packets;
        log.event("end", { ...end });
        // Packets delayed on the way may still come: listen one buffer length more,
        // unless everything is already here.
        const finish = () => {
          ended = true;
          poke();
        };
        if (stats.received >= end.packets) finish();
        else endGrace = setTimeout(finish, options.bufferMs ?? 200);
        return;
      }
      case FrameType.ERROR: {
        const e = readError(frame);
        log.event("error", { ...e });
        ended = true;
        ending = "error";
        serverReason = escapePeerText(e.message);
        poke();
        return;
      }
      case FrameType.BYE: {
        // The server ends the session (it stops): only with the session's token (§5.0).
        const bye = readSessionControl(frame);
        if (bye.token !== token) {
          stats.malformed++;
          return;
        }
        log.event("server_bye", { reason: bye.reason ?? null });
        if (!ended) ending = "server_bye";
        if (bye.reason !== undefined) serverReason = escapePeerText(bye.reason);
        ended = true;
        poke();
        return;
      }
      case FrameType.ACCEPT:
        return; // a repeated answer to a retried REQUEST
      default:
        stats.malformed++;
    }
  };

  // Receive path: just the socket. Silence is detected by a watchdog, not a timer per
  // datagram; closing the socket at the end resolves the pending receive with null.
  const timeoutMs = options.timeoutMs ?? 5000;
  const watchdog = setInterval(() => {
    if (!ended && performance.now() - lastArrival >= timeoutMs) {
      ending = "timeout";
      log.event("timeout", { silentMs: timeoutMs });
      ended = true;
      poke();
    }
  }, Math.min(250, timeoutMs));
  const receiver = (async () => {
    // A receive started during the handshake may still be pending: take it first.
    let pending = pendingReceive.get(socket);
    pendingReceive.delete(socket);
    for (;;) {
      // The next receive starts only after this datagram is handled: the buffer is reused.
      const got = await (pending ?? socket.receive(buffer)).catch(() => null);
      pending = undefined;
      if (!got || socket.closed) break;
      if (formatAddress(got.from) !== serverKey) {
        stats.malformed++; // not from our server: possibly forged
        continue;
      }
      const arrivalMs = performance.now();
      lastArrival = arrivalMs;
      let frame: Frame;
      try {
        frame = decodeDatagram(got.data, { maxPayload: Math.max(accept.maxPayload, 1200) });
      } catch (error) {
        if (!(error instanceof FrameError)) throw error;
        stats.malformed++;
        continue;
      }
      const handle = () => {
        try {
          onFrame(frame, performance.now());
        } catch (error) {
          if (!(error instanceof MessageError)) throw error;
          stats.malformed++;
        }
      };
      // --sim-* on the receive side: the copy is needed because the buffer is reused.
      if (options.impairment?.active) {
        frame = { ...frame, payload: frame.payload.slice() };
        options.impairment.apply(handle);
      } else {
        handle();
      }
    }
    poke();
  })();

  // Heartbeats (radio keep-alive, and acknowledgements that pace an on-demand stream).
  const heartbeat = setInterval(ack, Math.max(100, Math.min(heartbeatMs, 1000)));
  // Stopping now (--seconds, Ctrl+C) ends playout at once: the jitter buffer is not played
  // out, a write waiting for room on the device and the live pacing wait end, and the device
  // is not drained — a device that plays slower than the stream (or not at all) cannot keep
  // the client running past its time (issue #9 D2).
  const stop = new AbortController();
  const stopNow = () => {
    stop.abort(options.signal.aborted ? options.signal.reason : undefined);
    poke();
  };
  const limit = options.maxSeconds === undefined ? undefined : setTimeout(() => {
    if (!ended) ending = "seconds";
    ended = true;
    stopNow();
  }, options.maxSeconds * 1000);

  // Playout path.
  let output: PcmOutput | undefined;
  // Concealment of one gap is bounded by the jitter window (bufferMs, at least 1 s); a live
  // stream's output follows the media clock (lib/media/playout.ts).
  const windowUs = Math.max(options.bufferMs ?? 200, 1000) * 1000;
  using playout = new MediaPlayout({
    openOutput: async (format) => {
      // A live capture: the device period follows --buffer (a stall it can survive, and its
      // share of the heard latency).
      livePeriod = liveEpochUs === undefined ? undefined : livePeriodMs(jitter.bufferMs);
      const out = output = await options.openOutput!(
        format,
        livePeriod === undefined ? undefined : { periodMs: livePeriod },
      );
      return {
        write: (pcm, o) => {
          // A live capture to a device: single frames dropped or inserted keep the delay it
          // settled at, whatever the two clocks do (lib/live/playout_control.ts).
          const player = out.player;
          if (livePeriod !== undefined && hasDeviceCounters(player)) {
            const device = liveDevice ??= new LiveDevice(player, format, livePeriod);
            if (drift && pcm.length > format.channels) {
              const frames = pcm.length / format.channels;
              const jitterFrames = Math.max(0, newestTimestampUs - playingUs) *
                format.sampleRate / 1e6;
              const level = device.levelFrames() + jitterFrames;
              pcm = adjustBlock(pcm, format.channels, drift.update(level, frames));
            }
            const block = device.toWrite(pcm);
            if (!block) return Promise.resolve();
            pcm = block;
          }
          return out.write(pcm, o);
        },
      };
    },
    maxGapUs: windowUs,
    signal: stop.signal,
  });
  let current: { start: number; info: StreamInfo } | undefined;
  /** A live capture (STREAM_INFO captureEpochUs): latency capture → output, per packet. */
  const latency = new LatencyMeter();
  /** The same, plus what the device still had queued (when it will be heard). */
  const deviceLatency = new LatencyMeter();
  /** A live capture played to a device: keeps the delay at bufferMs. */
  let drift: DriftController | undefined;
  /** A live capture's device period (ms). */
  let livePeriod: number | undefined;
  /** A live capture on a device: its level and start batch. */
  let liveDevice: LiveDevice | undefined;
  /** Timestamp of the packet being played (the jitter buffer holds what is newer). */
  let playingUs = 0;
  let lastEndUs: number | undefined;
  let lastPacketUs = 0;
  /** Extended sequence number of the last packet played. */
  let lastSeq = -1;
  let lastProgress = -Infinity;
  /** Radio: the first played packet's timestamp (progress counts the time listened). */
  let streamStartUs: number | undefined;
  const infoFor = (seq: number) => {
    let found: { start: number; info: StreamInfo } | undefined;
    for (const i of infos) if (i.start <= seq) found = i;
    return found;
  };
  options.signal.addEventListener("abort", stopNow, { once: true });
  if (options.signal.aborted) stopNow();
  /** Device underruns, read before the device is closed. */
  let deviceUnderruns = 0;
  try {
    for (;;) {
      if (stop.signal.aborted) {
        if (options.signal.aborted) ending = "interrupted";
        break;
      }
      const now = performance.now();
      const item = jitter.next(now, ended);
      if (!item) {
        if (ended && jitter.size === 0) break;
        // Wait for a new packet (poke), the buffer's next deadline, or Ctrl+C (one listener
        // for the whole loop, added below, pokes too).
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, jitter.started ? jitter.waitHintMs(now) : 20);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        continue;
      }
      if (item.kind === "gap") {
        stats.concealed++;
        log.event("gap", { from: item.fromSeq, to: item.toSeq });
        options.timeline?.gap(item.fromSeq, item.toSeq);
        const codec = current?.info.codec;
        if (
          (codec === "pcm_s16le" || codec === "opus" || codec === "mp3") &&
          lastEndUs !== undefined &&
          options.openOutput
        ) {
          // No more than the lost packets could have held, whatever the timestamps say.
          const missing = Math.max(0, item.toSeq - item.fromSeq);
          if (
            !await stoppable(stop.signal, () =>
              playout.gap(
                // Packets of one stream differ in length (MP3 frames per packet vary): allow
                // twice the last one's per lost packet, not exactly it.
                Math.min(
                  Math.max(0, item.resumeTimestampUs - lastEndUs!),
                  2 * missing * lastPacketUs,
                ),
              ))
          ) continue;
        }
        continue;
      }
      const p = item.packet;
      const found = infoFor(p.seq32 ?? p.seq);
      if (!found) continue; // no STREAM_INFO yet for this packet (radio: it is repeated)
      if (found !== current) {
        current = found;
        stats.song = escapePeerText(found.info.title);
        // A song on demand starts at its start even when its first packets were lost: they
        // are concealed (from timestamp 0), so the output keeps the song's length.
        const headLost = request.op === "song" && p.timestampUs > 0 && lastEndUs === undefined;
        if (
          options.openOutput &&
          !await stoppable(
            stop.signal,
            () =>
              playout.startStream(
                found.info,
                request.op === "song" || (p.seq32 ?? p.seq) === found.start,
              ),
          )
        ) continue;
        if (headLost && options.openOutput) {
          stats.concealed++;
          log.event("gap", { from: 0, to: p.seq });
          if (!await stoppable(stop.signal, () => playout.gap(p.timestampUs))) continue;
        }
      }
      lastSeq = p.seq;
      playingUs = p.timestampUs;
      stats.played++;
      options.timeline?.level(
        Math.max(0, (newestTimestampUs - p.timestampUs) / 1000),
        jitter.underruns,
      );
      if (options.openOutput && !await stoppable(stop.signal, () => playout.media(p.payload))) {
        continue;
      }
      const epochUs = current.info.captureEpochUs;
      if (epochUs !== undefined && options.openOutput) {
        const now = wallClockUs();
        latency.record(epochUs + p.timestampUs, now);
        const queued = output?.player?.queuedFrames;
        if (queued !== undefined && playout.format) {
          deviceLatency.record(
            epochUs + p.timestampUs,
            now + queued * 1e6 / playout.format.sampleRate,
          );
          // The delay the stream settled at (jitter buffer + device) is kept.
          // What came while the device opened is skipped, not latched as the delay.
          drift ??= new DriftController({
            sampleRate: playout.format.sampleRate,
            maxStartMs: jitter.bufferMs + 10,
            maxExcessMs: Math.max(2 * (livePeriod ?? 50), 30),
          });
        }
      }
      if (current.info.codec === "pcm_s16le") {
        const frames = p.payload.length / (2 * current.info.channels);
        lastPacketUs = frames * 1e6 / current.info.sampleRate;
        lastEndUs = p.timestampUs + lastPacketUs;
      } else if (current.info.codec === "opus") {
        // The radio's Opus payloads: 20 ms frames (the count is the next gap's bound).
        lastPacketUs = opusFrameCount(p.payload) * (current.info.frameMs ?? 20) * 1000;
        lastEndUs = p.timestampUs + lastPacketUs;
      } else if (current.info.codec === "mp3") {
        // Whole MP3 frames (lib/media/packetizer.ts): their samples give the packet's length.
        lastPacketUs = mp3PayloadSamples(p.payload) * 1e6 / current.info.sampleRate;
        lastEndUs = p.timestampUs + lastPacketUs;
      } else {
        lastEndUs = p.timestampUs;
      }
      const at = performance.now();
      if (at - lastProgress >= PROGRESS_EVERY_MS && options.onNotice) {
        lastProgress = at;
        streamStartUs ??= request.op === "song" ? 0 : p.timestampUs;
        options.onNotice({
          type: "progress",
          progress: {
            positionMs: Math.max(0, (p.timestampUs - streamStartUs) / 1000),
            timestampUs: p.timestampUs,
            durationMs: request.op === "song" ? current.info.durationMs : undefined,
            bufferedMs: Math.max(0, Math.round((newestTimestampUs - p.timestampUs) / 1000)),
            lost: stats.lostSoFar,
          },
        });
      }
    }
    if (options.openOutput) {
      // A song whose last packets were lost: END said how many were sent; conceal the rest
      // (about one packet each; the playout caps a song at its announced length).
      const tail = (stats.sentBySender ?? 0) - (lastSeq + 1);
      if (request.op === "song" && ending === "end" && tail > 0 && lastPacketUs > 0) {
        stats.concealed++;
        log.event("gap", { from: lastSeq + 1, to: stats.sentBySender });
        await stoppable(stop.signal, () => playout.gap(tail * lastPacketUs));
      }
      if (!stop.signal.aborted) {
        await playout.finishStream();
        await output?.drain?.();
      }
      log.event("playout", {
        framesWritten: playout.framesWritten,
        framesConcealed: playout.framesConcealed,
        opusFramesDecoded: playout.opusFramesDecoded,
        opusFramesConcealed: playout.opusFramesConcealed,
        opusCorrupt: playout.opusCorrupt,
        opusFramesLimited: playout.opusFramesLimited,
      });
    }
  } finally {
    options.signal.removeEventListener("abort", stopNow);
    deviceUnderruns = output?.player?.underruns ?? 0;
    liveDevice?.[Symbol.dispose]();
    clearInterval(watchdog);
    clearInterval(heartbeat);
    clearTimeout(limit);
    clearTimeout(endGrace);
    if (!ended || ending !== "end" || request.op === "radio") await sendControl(FrameType.BYE);
    ended = true;
    socket.close();
    await receiver.catch(() => {});
    options.impairment?.close();
    await output?.close?.();
  }
  if (badInfo !== undefined && infos.length === 0 && ending !== "interrupted") {
    log.event("bad_stream_info", { error: badInfo });
    throw new MessageError(`The server sent no valid STREAM_INFO (${badInfo}); nothing to play`);
  }
  stats.underruns = jitter.underruns;
  stats.deviceUnderruns = deviceUnderruns;
  stats.overflowed = jitter.overflowed;
  const report = stats.report(
    ending,
    options.impairment?.active ? options.impairment.counts : undefined,
    serverReason,
  );
  if (latency.count > 0) {
    report.live = { ...latency.report(), bufferMs: jitter.bufferMs };
    if (deviceLatency.count > 0) {
      const d = deviceLatency.report();
      report.live.device = { medianMs: d.medianMs, p95Ms: d.p95Ms, p99Ms: d.p99Ms };
    }
    if (drift) {
      report.live.driftPpm = Math.round(drift.driftPpm * 10) / 10;
      report.live.framesDropped = drift.dropped;
      report.live.framesInserted = drift.inserted;
      report.live.framesSkipped = drift.skipped;
      if (drift.levelMs !== undefined) report.live.levelMs = Math.round(drift.levelMs * 10) / 10;
      if (drift.targetMs !== undefined) report.live.targetMs = Math.round(drift.targetMs * 10) / 10;
      if (livePeriod !== undefined) report.live.devicePeriodMs = livePeriod;
    }
  }
  log.event("stats", { ...report });
  return report;
}

/**
 * Runs one playout step; resolves false if `signal` stopped it (the step's rejection with the
 * signal's reason is the expected end of a wait), true when it completed.
 */
async function stoppable(signal: AbortSignal, step: () => Promise<void>): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (error) {
    if (signal.aborted) return false;
    throw error;
  }
}
