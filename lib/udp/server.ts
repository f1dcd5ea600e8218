/**
 * The UDP server: songs on demand (a private, paced stream per client) and a radio station
 * (one stream fanned out to every listener, byte-identical). Admission is limited, silent
 * clients are dropped, and anything that is not a valid request is counted and ignored —
 * UDP source addresses can be forged, so no datagram is trusted to be what it claims:
 *
 * - a REQUEST is served only once it echoes the cookie of a CHALLENGE sent to its source
 *   address (address_check.ts); before that the address gets the CHALLENGE alone, at most
 *   3x the bytes it sent, so a forged REQUEST cannot make the server stream to a victim;
 * - HEARTBEAT and BYE must carry the session's secret token from ACCEPT, so knowing the
 *   public stream id is not enough to drop or keep alive someone else's session;
 * - request budgets and admission count per source IP, not per IP:port.
 *
 * The message flows are in docs/PROTOCOL.md §5.0–5.2.
 *
 * @module
 */

import { delay } from "@std/async/delay";
import type { EventLog } from "../cli/event_log.ts";
import { LogThrottle } from "../cli/log_throttle.ts";
import { type Song, SongCatalog } from "../songs/catalog.ts";
import {
  decodeDatagram,
  encodeFrame,
  type Frame,
  FrameError,
  FrameFlag,
  FrameType,
  frameTypeName,
  HEADER_SIZE,
  writeHeader,
} from "../wire/frame.ts";
import {
  encodeControl,
  encodeJson,
  MessageError,
  readSessionControl,
  readUdpRequest,
  type Request,
  type SessionControl,
  type SongList,
  type StreamInfo,
} from "../wire/messages.ts";
import { formatAddress, toNetAddr, type UdpAddress, UdpSocket } from "../net/udp_socket.ts";
import { UdpFanOut } from "../net/udp_fanout.ts";
import { type PacketizedSong, PacketizeError, packetizeSong } from "../media/packetizer.ts";
import { type NextSong, Station, type StationEvent } from "../media/station.ts";
import type { RadioCodec } from "../station/encoder.ts";
import type { Impairment } from "./impairment.ts";
import { RtpSender } from "./rtp.ts";
import { ACK_EVERY, ACK_STALL_MS, FLOW_WINDOW } from "./flow_control.ts";
import {
  AddressCheck,
  newToken,
  sourceKey,
  tokensEqual,
  UNVALIDATED_FACTOR,
} from "./address_check.ts";

/** Options for {@linkcode UdpServer.start}. */
export interface UdpServerOptions {
  /** The songs served. */
  catalog: SongCatalog;
  /** Address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port to bind; 0 picks a free one. @default {9000} */
  port?: number;
  /** Most concurrent clients (on-demand streams + radio listeners). @default {32} */
  maxClients?: number;
  /**
   * Most concurrent clients from one source IP (any ports; IPv6: one /64); 0: no limit. The
   * same default as tls-server's.
   * @default {16}
   */
  maxClientsPerIp?: number;
  /**
   * Gap between DATA packets of on-demand streams in ms; undefined paces in real time from
   * media timestamps; 0 sends as fast as the client acknowledges.
   */
  intervalMs?: number;
  /** Largest DATA payload. @default {1200} */
  maxPayload?: number;
  /** Drop a client that sent nothing for this long (ms). @default {10000} */
  heartbeatTimeoutMs?: number;
  /** Radio: loop this one song instead of the whole library. */
  radioSong?: Song;
  /** Radio codec (`opus` falls back to `pcm` without libopus). @default {"opus"} */
  radioCodec?: RadioCodec;
  /** Radio Opus bitrate in bit/s. @default {128000} */
  bitrate?: number;
  /** Send-side impairment (`--sim-*`). */
  impairment?: Impairment;
  /** Also push the radio as RTP to this address (Opus per RFC 7587, or L16; lib/udp/rtp.ts). */
  rtp?: UdpAddress;
  /** Event log. */
  log: EventLog;
  /** Stops the server. */
  signal: AbortSignal;
  /**
   * Broadcast this station instead of the song radio (mic-broadcast's live station). The
   * caller runs it; the catalog may then be empty (on-demand requests find no song).
   */
  station?: Station;
}

/** Counters the server keeps (also logged at shutdown). */
export interface UdpServerStats {
  datagrams: number;
  /** Invalid frames and invalid control payloads, counted and ignored. */
  malformed: number;
  rejected: number;
  streamsStarted: number;
  streamsCompleted: number;
  listenersJoined: number;
  timedOut: number;
  /** REQUESTs over the per-IP budget, counted and ignored. */
  rateLimited: number;
  /** CHALLENGEs sent (to REQUESTs without a valid cookie). */
  challenges: number;
  /** REQUESTs whose cookie was wrong or expired (answered with a new CHALLENGE). */
  badCookies: number;
  /** HEARTBEAT / BYE for a session without its token, counted and ignored. */
  forged: number;
  /** Bytes received in REQUESTs that carried no valid cookie. */
  unvalidatedBytesIn: number;
  /** Bytes sent in answer to those (CHALLENGEs only): at most 3x unvalidatedBytesIn. */
  unvalidatedBytesOut: number;
  /** Radio packets not sent to anyone because the fan-out fell too far behind. */
  fanOutDropped: number;
}

/** REQUESTs answered per source IP and second (docs/PROTOCOL.md §5.0). */
const REPLIES_PER_SECOND = 20;
/** Radio listeners get NOW_PLAYING and STREAM_INFO again this often (they may be lost). */
const INFO_REPEAT_MS = 5000;
/** Radio fan-out rounds that may wait behind the one being sent (~1 s of 60 ms packets). */
const MAX_FANOUT_ROUNDS = 16;

interface Session {
  key: string;
  /** Source IP key (admission per IP). */
  ip: string;
  /** Secret from ACCEPT that HEARTBEAT and BYE must carry. */
  token: string;
  /** Built once: the radio sends to it for every packet. */
  addr: Deno.NetAddr;
  kind: "song" | "radio";
  streamId: number;
  lastSeen: number;
  /** On-demand: the song asked for (a repeated REQUEST for it re-sends ACCEPT + STREAM_INFO). */
  song?: Song;
  info?: StreamInfo;
  /** On-demand: packets acknowledged (next sequence the client expects). */
  acked: number;
  ackAt: number;
  ackWaiter?: () => void;
  stop: AbortController;
}

/** A running UDP server. */
export class UdpServer implements AsyncDisposable {
  readonly #options: UdpServerOptions;
  readonly #socket: UdpSocket;
  readonly #sessions = new Map<string, Session>();
  readonly #stop = new AbortController();
  readonly #station: Station;
  readonly #stationId: number;
  readonly #maxPayload: number;
  readonly #cache = new Map<string, Promise<PacketizedSong>>();
  readonly #replyBudget = new Map<string, { second: number; count: number }>();
  readonly #perIp = new Map<string, number>();
  /** Sessions that ended lately: their late HEARTBEATs (acks in flight) are not malformed. */
  readonly #ended = new Map<string, { streamId: number; token: string; at: number }>();
  readonly #check = new AddressCheck();
  /** Flood events (malformed, forged) are logged sparingly. */
  readonly #logThrottle = new LogThrottle();
  #radioInfo: { info: StreamInfo; startSequence: number; frame: Uint8Array } | undefined;
  #nowPlayingFrame: Uint8Array | undefined;
  #rtp: RtpSender | undefined;
  #tasks: Promise<unknown>[] = [];
  #radioLoop = 0;
  /** Recent radio DATA frames (about 400 ms), re-sent to a new listener. */
  #burst: Uint8Array[] = [];
  #nextRadioSequence = 0;
  #listenerCount = 0;
  /** The radio's fan-out rounds, in order (see #fanOut). */
  #fanOutChain: Promise<unknown> = Promise.resolve();
  #fanOutQueued = 0;
  /** The radio listeners' addresses, in the batch table the fan-out sends from. */
  readonly #radioPeers: UdpFanOut;
  /** Counters. */
  readonly stats: UdpServerStats = {
    datagrams: 0,
    malformed: 0,
    rejected: 0,
    streamsStarted: 0,
    streamsCompleted: 0,
    listenersJoined: 0,
    timedOut: 0,
    rateLimited: 0,
    challenges: 0,
    badCookies: 0,
    forged: 0,
    fanOutDropped: 0,
    unvalidatedBytesIn: 0,
    unvalidatedBytesOut: 0,
  };
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;

  private constructor(options: UdpServerOptions, socket: UdpSocket) {
    this.#options = options;
    this.#socket = socket;
    this.#radioPeers = new UdpFanOut(socket);
    this.#maxPayload = options.maxPayload ?? 1200;
    this.#stationId = crypto.getRandomValues(new Uint32Array(1))[0]!;
    const signal = AbortSignal.any([options.signal, this.#stop.signal]);
    if (options.rtp) this.#rtp = new RtpSender(socket, options.rtp);
    this.#station = options.station ?? new Station({
      maxPayload: this.#maxPayload,
      // ~60 ms a datagram: 3 Opus frames (docs/PROTOCOL.md §4).
      maxPacketMs: 60,
      codec: options.radioCodec,
      bitrate: options.bitrate,
      nextSong: () => this.#nextRadioSong(),
      signal,
      onSkip: (song, error) =>
        options.log.event("radio_skip", { song: song.title, error: error.message }),
      onFallback: (reason) => options.log.event("radio_codec_fallback", { reason }),
    });
    this.#station.subscribe((event) => this.#onStation(event));
    this.finished = this.#run(signal);
  }

  /**
   * Binds the socket and starts serving.
   *
   * @throws {Error} if the catalog is empty or the address cannot be bound.
   */
  static start(options: UdpServerOptions): UdpServer {
    if (options.catalog.songs.length === 0 && !options.station) {
      throw new Error(`No songs to serve in "${options.catalog.root}" (mp3, wav or flac files)`);
    }
    const socket = UdpSocket.bind(options.hostname ?? "127.0.0.1", options.port ?? 9000);
    return new UdpServer(options, socket);
  }

  /** The bound address. */
  get address(): UdpAddress {
    return this.#socket.address;
  }

  /** The radio station (its codec, clock and events). */
  get station(): Station {
    return this.#station;
  }

  /** Current sessions (on-demand streams + radio listeners). */
  get clientCount(): number {
    return this.#sessions.size;
  }

  /** Stops serving and waits for every task to finish. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.finished;
  }

  /** Same as {@linkcode close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { log } = this.#options;
    log.event("server_start", {
      address: formatAddress(this.address),
      songs: this.#options.catalog.songs.length,
    });
    if (this.#options.impairment) log.event("simulation", { ...this.#options.impairment.options });
    const station = this.#options.station ? Promise.resolve() : this.#station.run();
    const sweeper = this.#sweep(signal);
    // Listeners are told before the socket closes, so they report a server stop, not a loss.
    const onAbort = () => void this.#sayBye("server stopping").finally(() => this.#socket.close());
    signal.addEventListener("abort", onAbort, { once: true });
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const got = await this.#socket.receive(buffer);
        if (!got) break;
        this.stats.datagrams++;
        this.#onDatagram(got.data, got.from);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#stop.abort();
      this.#socket.close();
      for (const s of this.#sessions.values()) s.stop.abort();
      await Promise.allSettled([station, sweeper, ...this.#tasks]);
      this.#options.impairment?.close();
      log.event("server_stop", {
        ...this.stats,
        ...(this.#options.impairment ? { injected: this.#options.impairment.counts } : {}),
      });
    }
  }

  #onDatagram(data: Uint8Array, from: UdpAddress): void {
    let frame: Frame;
    try {
      frame = decodeDatagram(data, { maxPayload: Math.max(this.#maxPayload, 1200) });
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.#malformed(from, error.message);
      return;
    }
    switch (frame.type) {
      case FrameType.REQUEST:
        this.#onRequestFrame(frame, from, data.length);
        return;
      case FrameType.HEARTBEAT:
      case FrameType.BYE:
        this.#onSessionFrame(frame, from);
        return;
      default:
        this.#malformed(from, `unexpected ${frameTypeName(frame.type)} from a client`);
    }
  }

  /**
   * A REQUEST: invalid ones are counted and never answered; valid ones within the source IP's
   * budget get a CHALLENGE unless they echo a valid cookie, and only then are served (§5.0).
   */
  #onRequestFrame(frame: Frame, from: UdpAddress, size: number): void {
    let request: Request;
    let cookie: string | undefined;
    try {
      ({ request, cookie } = readUdpRequest(frame));
    } catch (error) {
      if (!(error instanceof MessageError)) throw error;
      this.#malformed(from, error.message);
      return;
    }
    const ip = sourceKey(from.hostname);
    // Requests are answered (and logged) within a per-IP budget, so a flood can neither fill
    // the log nor make the server send more than 20 answers a second to one host.
    if (!this.#withinReplyBudget(ip)) return;
    if (cookie === undefined || !this.#check.verify(from, cookie)) {
      if (cookie !== undefined) this.stats.badCookies++;
      this.#challenge(from, size);
      return;
    }
    const key = formatAddress(from);
    this.#onRequest(request, from, key, ip, this.#sessions.get(key));
  }

  /** Answers an unproven address: one CHALLENGE, never more than 3x what it sent. */
  #challenge(to: UdpAddress, receivedBytes: number): void {
    const frame = encodeControl(FrameType.CHALLENGE, { cookie: this.#check.cookieFor(to) });
    this.stats.unvalidatedBytesIn += receivedBytes;
    if (frame.length > UNVALIDATED_FACTOR * receivedBytes) return;
    this.stats.challenges++;
    this.stats.unvalidatedBytesOut += frame.length;
    this.#send(to, frame);
  }

  /** HEARTBEAT or BYE: only for this address's session, and only with its token. */
  #onSessionFrame(frame: Frame, from: UdpAddress): void {
    const what = frameTypeName(frame.type);
    const key = formatAddress(from);
    const session = this.#sessions.get(key);
    let control: SessionControl;
    try {
      control = readSessionControl(frame);
    } catch (error) {
      if (!(error instanceof MessageError)) throw error;
      this.#malformed(from, error.message);
      return;
    }
    if (!session || session.streamId !== frame.streamId) {
      const ended = this.#ended.get(key);
      if (ended?.streamId === frame.streamId && tokensEqual(control.token, ended.token)) return;
      this.#malformed(from, `${what} for no stream of this address`);
      return;
    }
    if (!tokensEqual(control.token, session.token)) {
      this.stats.forged++;
      if (this.#logThrottle.admit("forged") > 0) {
        this.#options.log.event("forged", {
          from: session.key,
          type: what,
          reason: control.token === undefined ? "no token" : "wrong token",
          total: this.stats.forged,
        });
      }
      return;
    }
    if (frame.type === FrameType.BYE) {
      this.#endSession(session, "bye");
      return;
    }
    session.lastSeen = performance.now();
    if (control.ack !== undefined && control.ack > session.acked) {
      session.acked = control.ack;
      session.ackAt = performance.now();
      session.ackWaiter?.();
    }
  }

  #onRequest(
    request: Request,
    from: UdpAddress,
    key: string,
    ip: string,
    session: Session | undefined,
  ): void {
    const { log, catalog } = this.#options;
    log.event("request", { from: key, ...request });
    switch (request.op) {
      case "list":
        this.#reply(from, FrameType.SONG_LIST, this.#songListPage(request.offset ?? 0));
        return;
      case "now_playing": {
        const np = this.#station.nowPlaying();
        if (np) this.#reply(from, FrameType.NOW_PLAYING, np);
        return;
      }
      case "song": {
        const song = catalog.find(request.song);
        if (!song) {
          log.event("not_found", { from: key, song: request.song });
          this.#reply(from, FrameType.ERROR, {
            code: "not_found",
            message: catalog.notFoundMessage(request.song),
          });
          return;
        }
        if (session?.kind === "song" && session.song === song) {
          // A retried REQUEST (our ACCEPT was lost): answer again, do not start a second stream.
          this.#sendAcceptAndInfo(session);
          return;
        }
        if (session) this.#endSession(session, "replaced");
        if (!this.#admit(from, key, ip)) return;
        this.#startSong(song, from, key, ip);
        return;
      }
      case "radio": {
        if (session?.kind === "radio") {
          session.lastSeen = performance.now();
          this.#sendRadioWelcome(session);
          return;
        }
        if (session) this.#endSession(session, "replaced");
        if (!this.#admit(from, key, ip)) return;
        this.#joinRadio(from, key, ip);
        return;
      }
      default:
        this.#reply(from, FrameType.ERROR, {
          code: "bad_request",
          message: `"${request.op}" is not available over UDP (use tls-client)`,
        });
    }
  }

  #admit(from: UdpAddress, key: string, ip: string): boolean {
    const max = this.#options.maxClients ?? 32;
    const maxPerIp = (this.#options.maxClientsPerIp ?? 16) || Infinity;
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (this.#sessions.size < max && fromIp < maxPerIp) return true;
    this.stats.rejected++;
    if (fromIp >= maxPerIp) {
      this.#options.log.event("reject", { from: key, reason: "busy", fromIp });
      this.#reply(from, FrameType.REJECT, {
        code: "busy",
        reason: `Too many clients from ${ip}: ${maxPerIp} of ${maxPerIp}, try again later`,
      });
      return false;
    }
    this.#options.log.event("reject", {
      from: key,
      reason: "server_full",
      clients: this.#sessions.size,
    });
    this.#reply(from, FrameType.REJECT, {
      code: "server_full",
      reason: `Server full: ${max} of ${max} clients connected, try again later`,
    });
    return false;
  }

  #newSession(
    kind: Session["kind"],
    from: UdpAddress,
    key: string,
    ip: string,
    streamId: number,
  ): Session {
    const now = performance.now();
    const session: Session = {
      key,
      ip,
      token: newToken(),
      addr: toNetAddr(from),
      kind,
      streamId,
      lastSeen: now,
      acked: 0,
      ackAt: now,
      stop: new AbortController(),
    };
    this.#sessions.set(key, session);
    if (kind === "radio") this.#radioPeers.add(key, session.addr);
    this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1);
    return session;
  }

  #endSession(session: Session, reason: string): void {
    if (this.#sessions.get(session.key) !== session) return;
    this.#sessions.delete(session.key);
    if (session.kind === "radio") this.#radioPeers.delete(session.key);
    const { streamId, token } = session;
    if (this.#ended.size < 10_000) {
      this.#ended.set(session.key, { streamId, token, at: performance.now() });
    }
    const fromIp = (this.#perIp.get(session.ip) ?? 1) - 1;
    if (fromIp > 0) this.#perIp.set(session.ip, fromIp);
    else this.#perIp.delete(session.ip);
    if (session.kind === "radio") this.#listenerCount--;
    session.stop.abort();
    session.ackWaiter?.();
    this.#options.log.event(session.kind === "radio" ? "listener_leave" : "stream_stop", {
      from: session.key,
      reason,
    });
  }

  // ---- on demand -------------------------------------------------------------------------

  #startSong(song: Song, from: UdpAddress, key: string, ip: string): void {
    let streamId = crypto.getRandomValues(new Uint32Array(1))[0]!;
    if (streamId === this.#stationId || streamId === 0) streamId ^= 0x5a5a5a5a;
    const session = this.#newSession("song", from, key, ip, streamId);
    session.song = song;
    this.stats.streamsStarted++;
    const task = this.#streamSong(session, song).catch((error) => {
      this.#options.log.event("stream_error", {
        from: key,
        song: song.title,
        error: String(error),
      });
      this.#send(
        session.addr,
        encodeControl(FrameType.ERROR, {
          code: "internal",
          // The packetizer's errors already name the song.
          message: error instanceof PacketizeError
            ? error.message
            : `Cannot stream "${song.title}": ${(error as Error).message}`,
        }, { streamId }),
      );
    }).finally(() => {
      this.#endSession(session, "finished");
      this.#tasks = this.#tasks.filter((t) => t !== task);
    });
    this.#tasks.push(task);
  }

  #packetized(song: Song): Promise<PacketizedSong> {
    let p = this.#cache.get(song.title);
    if (!p) {
      p = packetizeSong(song, this.#maxPayload);
      p.catch(() => this.#cache.delete(song.title));
      this.#cache.set(song.title, p);
      // Keep a few songs; the rest are cut again when asked for.
      if (this.#cache.size > 8) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return p;
  }

  #sendAcceptAndInfo(session: Session): void {
    const { streamId } = session;
    this.#send(
      session.addr,
      encodeControl(FrameType.ACCEPT, {
        op: "song",
        maxPayload: this.#maxPayload,
        token: session.token,
      }, { streamId }),
    );
    if (session.info) {
      this.#send(session.addr, encodeControl(FrameType.STREAM_INFO, session.info, { streamId }));
    }
  }

  async #streamSong(session: Session, song: Song): Promise<void> {
    const { log, intervalMs } = this.#options;
    const { signal } = session.stop;
    const packetized = await this.#packetized(song);
    session.info = packetized.info;
    this.#sendAcceptAndInfo(session);
    log.event("stream_start", {
      from: session.key,
      song: song.title,
      streamId: session.streamId,
      packets: packetized.packets.length,
      codec: packetized.info.codec,
    });
    const packets = packetized.packets;
    const start = performance.now();
    let bytes = 0;
    for (let i = 0; i < packets.length; i++) {
      if (signal.aborted) return;
      const p = packets[i]!;
      const due = intervalMs === undefined ? start + p.timestampUs / 1000 : start + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await delay(wait, { signal }).catch(() => {});
      // Flow control: never run more than FLOW_WINDOW packets ahead of the client.
      while (!signal.aborted && i - session.acked >= FLOW_WINDOW) {
        const stalled = performance.now() - session.ackAt;
        if (stalled >= ACK_STALL_MS) {
          session.acked = i - FLOW_WINDOW + ACK_EVERY; // assume acks were lost; probe onward
          session.ackAt = performance.now();
          break;
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, ACK_STALL_MS - stalled);
          session.ackWaiter = () => {
            clearTimeout(t);
            resolve();
          };
        });
        session.ackWaiter = undefined;
      }
      if (signal.aborted) return;
      const frame = encodeFrame({
        type: FrameType.DATA,
        flags: i === 0 ? FrameFlag.SONG_START : 0,
        streamId: session.streamId,
        sequence: i,
        timestamp: p.timestampUs,
        payload: p.payload,
      }, { maxPayload: this.#maxPayload });
      bytes += p.payload.length;
      // With --interval 0, wait for every 16th send to complete: that yields to the event loop
      // (so acknowledgements are read) without a timer's minimum delay.
      const sent = this.#send(session.addr, frame);
      if (intervalMs === 0 && i % 16 === 15) await sent;
    }
    this.#options.impairment?.flush();
    const end = encodeControl(FrameType.END, { packets: packets.length, bytes }, {
      streamId: session.streamId,
    });
    // END can be lost like any datagram: send it twice, 20 ms apart.
    this.#send(session.addr, end);
    await delay(20, { signal }).catch(() => {});
    this.#send(session.addr, end);
    this.stats.streamsCompleted++;
    log.event("stream_end", {
      from: session.key,
      song: song.title,
      packets: packets.length,
      bytes,
    });
  }

  // ---- radio -----------------------------------------------------------------------------

  #nextRadioSong(): NextSong {
    const songs = this.#options.catalog.songs;
    const song = this.#options.radioSong ?? songs[this.#radioLoop++ % songs.length]!;
    return { song, source: "random" };
  }

  #joinRadio(from: UdpAddress, key: string, ip: string): void {
    const session = this.#newSession("radio", from, key, ip, this.#stationId);
    this.stats.listenersJoined++;
    this.#listenerCount++;
    this.#options.log.event("listener_join", { from: key, listeners: this.#radioListeners() });
    this.#sendRadioWelcome(session);
  }

  #sendRadioWelcome(session: Session): void {
    const streamId = this.#stationId;
    this.#send(
      session.addr,
      encodeControl(FrameType.ACCEPT, {
        op: "radio",
        maxPayload: this.#maxPayload,
        heartbeatMs: Math.max(500, Math.floor((this.#options.heartbeatTimeoutMs ?? 10_000) / 4)),
        token: session.token,
      }, { streamId }),
    );
    if (this.#nowPlayingFrame) this.#send(session.addr, this.#nowPlayingFrame);
    if (this.#radioInfo) this.#send(session.addr, this.#radioInfo.frame);
    // The join burst: the last few hundred ms of the song, so playback starts at once.
    const burst = this.#burst;
    for (const frame of burst) this.#send(session.addr, frame);
  }

  #radioListeners(): number {
    return this.#listenerCount;
  }

  #onStation(event: StationEvent): void {
    const streamId = this.#stationId;
    if (event.type === "song") {
      this.#burst = [];
      this.#nowPlayingFrame = encodeControl(FrameType.NOW_PLAYING, event.nowPlaying, { streamId });
      // STREAM_INFO's sequence field says which DATA frame the song starts at (§3.2).
      const startSequence = this.#nextRadioSequence;
      this.#radioInfo = {
        info: event.info,
        startSequence,
        frame: encodeFrame({
          type: FrameType.STREAM_INFO,
          streamId,
          sequence: startSequence,
          payload: encodeJson(event.info),
        }),
      };
      this.#options.log.event("radio_song", {
        title: event.nowPlaying.title,
        listeners: this.#radioListeners(),
      });
      this.#fanOut(this.#nowPlayingFrame);
      this.#fanOut(this.#radioInfo.frame);
      return;
    }
    const p = event.packet;
    this.#nextRadioSequence = (p.sequence + 1) >>> 0;
    const frame = new Uint8Array(HEADER_SIZE + p.payload.length);
    writeHeader(frame, {
      type: FrameType.DATA,
      flags: p.songStart ? FrameFlag.SONG_START : 0,
      streamId,
      sequence: p.sequence,
      timestamp: p.timestampUs,
    }, p.payload);
    frame.set(p.payload, HEADER_SIZE);
    this.#burst.push(frame);
    if (this.#burst.length > 64) this.#burst.shift();
    this.#trimBurst(p.timestampUs);
    this.#fanOut(frame);
    this.#rtp?.packet(p, this.#station.codec);
  }

  #trimBurst(nowUs: number): void {
    // Keep the station's join burst (about 400 ms; none live): read each kept frame's timestamp.
    const keepUs = this.#station.joinBurstMs * 1000;
    while (this.#burst.length > (keepUs > 0 ? 1 : 0)) {
      const first = this.#burst[0]!;
      const ts = Number(new DataView(first.buffer, first.byteOffset).getBigUint64(16));
      if (keepUs > 0 && nowUs - ts <= keepUs) break;
      this.#burst.shift();
    }
  }

  #fanOut(frame: Uint8Array): void {
    if (this.#options.impairment?.active) {
      for (const s of this.#sessions.values()) if (s.kind === "radio") this.#send(s.addr, frame);
      return;
    }
    // One round at a time: a send the kernel cannot take at once completes later, and the next
    // packet's sends would overtake it (seen: listeners reordering after the station caught up
    // on a late timer). A round starts when the previous one has left; a backlog beyond
    // MAX_FANOUT_ROUNDS rounds is dropped rather than delayed further.
    if (this.#fanOutQueued >= MAX_FANOUT_ROUNDS) {
      this.stats.fanOutDropped++;
      return;
    }
    this.#fanOutQueued++;
    this.#fanOutChain = this.#fanOutChain.then(() => {
      this.#fanOutQueued--;
      // The hot path at thousands of listeners: one batch of sends (lib/net/udp_fanout.ts).
      return this.#radioPeers.send(frame);
    });
  }

  // ---- housekeeping ----------------------------------------------------------------------

  async #sweep(signal: AbortSignal): Promise<void> {
    const timeout = this.#options.heartbeatTimeoutMs ?? 10_000;
    let lastInfo = performance.now();
    while (!signal.aborted) {
      await delay(Math.min(500, timeout / 4), { signal }).catch(() => {});
      const now = performance.now();
      for (const [key, e] of this.#ended) if (now - e.at > timeout) this.#ended.delete(key);
      for (const s of [...this.#sessions.values()]) {
        if (now - s.lastSeen > timeout) {
          this.stats.timedOut++;
          this.#options.log.event("timeout", {
            from: s.key,
            kind: s.kind,
            silentMs: Math.round(now - s.lastSeen),
          });
          this.#endSession(s, "heartbeat timeout");
        }
      }
      if (now - lastInfo >= INFO_REPEAT_MS) {
        lastInfo = now;
        if (this.#nowPlayingFrame) {
          const np = this.#station.nowPlaying();
          if (np) {
            this.#nowPlayingFrame = encodeControl(FrameType.NOW_PLAYING, np, {
              streamId: this.#stationId,
            });
          }
          this.#fanOut(this.#nowPlayingFrame);
        }
        if (this.#radioInfo) this.#fanOut(this.#radioInfo.frame);
      }
      // Budgets of past seconds are done with; a flood from very many addresses is bounded.
      const second = Math.floor(now / 1000);
      for (const [ip, b] of this.#replyBudget) {
        if (b.second !== second) this.#replyBudget.delete(ip);
      }
      if (this.#replyBudget.size > 100_000) this.#replyBudget.clear();
    }
  }

  #songListPage(offset: number): SongList {
    return this.#options.catalog.page(offset, this.#maxPayload);
  }

  /** Counts one request against the source IP's budget; false (and counted) when spent. */
  #withinReplyBudget(key: string): boolean {
    const second = Math.floor(performance.now() / 1000);
    const budget = this.#replyBudget.get(key);
    if (!budget || budget.second !== second) {
      this.#replyBudget.set(key, { second, count: 1 });
      return true;
    }
    if (++budget.count <= REPLIES_PER_SECOND) return true;
    this.stats.rateLimited++;
    return false;
  }

  /**
   * Sends every session BYE {"token", "reason"} on its stream (PROTOCOL.md §5.0 rule 8), waiting
   * at most 200 ms for the datagrams to leave.
   */
  async #sayBye(reason: string): Promise<void> {
    const sends = [...this.#sessions.values()].map((session) =>
      this.#send(
        session.addr,
        encodeControl(FrameType.BYE, { token: session.token, reason }, {
          streamId: session.streamId,
        }),
      )
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(sends),
      new Promise((resolve) => (timer = setTimeout(resolve, 200))),
    ]);
    clearTimeout(timer);
  }

  /** A reply to a request (its budget was checked on arrival). */
  #reply(to: UdpAddress, type: FrameType, body: unknown): void {
    this.#send(to, encodeControl(type, body, { maxPayload: this.#maxPayload }));
  }

  #malformed(from: UdpAddress, reason: string): void {
    this.stats.malformed++;
    // The first 100 in full, then every 1000th: a flood cannot fill the disk.
    if (this.#logThrottle.admit("malformed") > 0) {
      this.#options.log.event("malformed", {
        from: formatAddress(from),
        reason,
        total: this.stats.malformed,
      });
    }
  }

  /** Sends through the `--sim-*` impairment if any; resolves when the datagram left (or not). */
  #send(to: UdpAddress | Deno.NetAddr, bytes: Uint8Array): Promise<unknown> {
    const impairment = this.#options.impairment;
    if (!impairment?.active) return this.#socket.send(bytes, to);
    impairment.apply(() => void this.#socket.send(bytes, to));
    return Promise.resolve();
  }
}
