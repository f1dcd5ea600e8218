/**
 * tls-server: serves the songs of one folder over TLS to many clients at once (downloads
 * with SHA-256, the song list) and runs a request radio that plays in real time from start to
 * shutdown, whether or not anyone listens. Protocol: docs/PROTOCOL.md §5.3.
 *
 * @module
 */

import { type EventFields, EventLog } from "../cli/event_log.ts";
import { Station, type StationEvent } from "../media/station.ts";
import type { RadioCodec } from "../station/encoder.ts";
import type { SongCatalog } from "../songs/catalog.ts";
import { RadioProgram } from "../station/radio_program.ts";
import { ListenError } from "../net/listen_error.ts";
import { sourceKey } from "../net/source_key.ts";
import { type AcceptStats, acceptTls } from "./acceptor.ts";
import type { TcpListener } from "./tcp_listener.ts";
import { listenForTls, ServerIdentityError, serverTls } from "./engine.ts";
import type { NativeTlsLoad } from "./native/ffi.ts";
import type { ServerConnection } from "./server_conn.ts";
import { Session } from "./session.ts";
import { SongHashes } from "./song_hashes.ts";
import { RelayHub, type RelayHubOptions } from "../relay/hub.ts";

export { ServerIdentityError };

/** Options for {@linkcode TlsSongServer.start}. */
export interface TlsSongServerOptions {
  /** The songs to serve. */
  catalog: SongCatalog;
  /** Server certificate chain, PEM. */
  cert: string;
  /** Private key, PEM. */
  key: string;
  /**
   * OpenSSL for TLS (`await loadNativeTls()`, lib/tls/native/ffi.ts); node:tls without it.
   * @default {undefined} (node:tls)
   */
  nativeTls?: NativeTlsLoad;
  /** Address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one (see {@linkcode TlsSongServer.addr}). @default {8443} */
  port?: number;
  /** Most clients served at once; more get REJECT server_full. @default {64} */
  maxClients?: number;
  /**
   * Most clients served at once from one IP address; more get REJECT busy. 0: no limit.
   * @default {16}
   */
  maxClientsPerIp?: number;
  /**
   * A connection that sends no request for this long while nothing is streaming to it
   * (HEARTBEATs do not count), or whose pending write makes no progress for this long, is
   * closed.
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /** Time allowed for the TLS handshake; the TCP socket is closed after it. @default {5000} */
  handshakeTimeoutMs?: number;
  /** TLS handshakes in progress from one IP address; past it its oldest is dropped. @default {64} */
  maxHandshakesPerIp?: number;
  /** TLS handshakes in progress in total; past it the oldest is dropped. @default {256} */
  maxHandshakes?: number;
  /**
   * Bytes queued per connection before a radio listener counts as too slow.
   * @default {1048576}
   */
  sendQueueBytes?: number;
  /**
   * Largest radio DATA payload (smaller packets reach listeners sooner).
   * @default {16384}
   */
  radioMaxPayload?: number;
  /** How much of the current song a joining listener gets at once. @default {400} */
  joinBurstMs?: number;
  /** Event log (--log). @default {EventLog.none()} */
  log?: EventLog;
  /** Also called with every logged event (tests await events with it). */
  onEvent?: (event: string, fields: EventFields) => void;
  /** Random source for the radio. @default {Math.random} */
  random?: () => number;
  /** Stops the server (clients get ERROR shutdown). */
  signal?: AbortSignal;
  /** Radio codec (`opus` falls back to `pcm` without libopus). @default {"opus"} */
  radioCodec?: RadioCodec;
  /** Radio Opus bitrate in bit/s. @default {128000} */
  bitrate?: number;
  /**
   * Shares the port with HTTPS (`tls-server --web` without `--web-port`): a connection whose
   * first decrypted bytes are not the frame magic `SK` (docs/PROTOCOL.md §1) goes here instead
   * of becoming a session. Without it every connection is a session.
   */
  onHttp?: (conn: ServerConnection) => void;
  /** Run the relay overlay (--relay-fanout; docs/PROTOCOL.md §9). @default {undefined} (off) */
  relay?: Pick<RelayHubOptions, "fanout" | "windowMs" | "onOverlay">;
  /**
   * Broadcast this station instead of the song radio (mic-broadcast's live station). The
   * caller runs it.
   */
  station?: Station;
}

/** Counters for tests, benchmarks and logs. */
export interface TlsServerStats extends AcceptStats {
  /** Clients refused with REJECT (server full, too many from one address). */
  rejected: number;
  /** Clients being served now. */
  active: number;
}

/** A running tls-server. */
export class TlsSongServer implements AsyncDisposable {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** The radio station (running). */
  readonly station: Station;
  /** The request queue. */
  readonly program: RadioProgram;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  readonly stats: TlsServerStats = {
    accepted: 0,
    rejected: 0,
    handshakeFailures: 0,
    dropped: 0,
    acceptErrors: 0,
    active: 0,
  };
  /** The relay overlay, when started with `relay`. */
  readonly relay: RelayHub | undefined;
  readonly #sessions = new Set<Session>();
  readonly #stop = new AbortController();
  readonly #log: EventLog;

  private constructor(options: TlsSongServerOptions) {
    const {
      catalog,
      maxClients = 64,
      maxClientsPerIp = 16,
      idleTimeoutMs = 30_000,
      handshakeTimeoutMs = 5_000,
    } = options;
    this.#log = options.log ?? EventLog.none();
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#stop.signal])
      : this.#stop.signal;
    // Checked before listening so that a bad certificate or key is the first error.
    const serverTlsSetup = serverTls(options.cert, options.key, options.nativeTls);
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 8443;
    let listener: TcpListener;
    try {
      listener = listenForTls(serverTlsSetup, { hostname, port });
    } catch (cause) {
      throw new ListenError(`listen on ${hostname}:${port}`, cause);
    }
    this.addr = listener.addr;
    const log = (event: string, fields: EventFields) => {
      this.#log.event(event, fields);
      options.onEvent?.(event, fields);
    };
    this.program = new RadioProgram(catalog, {
      random: options.random,
      // Read when a request comes in, by which time the station exists.
      current: () => this.station?.currentSong,
    });
    const radioMaxPayload = options.radioMaxPayload ?? 16 * 1024;
    const station = options.station ?? new Station({
      maxPayload: radioMaxPayload,
      // At most 100 ms of audio per write (5 Opus frames; docs/PROTOCOL.md §4).
      maxPacketMs: 100,
      codec: options.radioCodec,
      bitrate: options.bitrate,
      nextSong: () => this.program.next(),
      signal,
      joinBurstMs: options.joinBurstMs,
      onSkip: (song, error) => log("song_skipped", { title: song.title, error: error.message }),
      onFallback: (reason) => log("radio_codec_fallback", { reason }),
    });
    this.station = station;
    station.subscribe((event) => {
      if (event.type === "song") {
        log("song_start", { ...event.nowPlaying, listeners: station.listenerCount - 1 });
      }
    });
    const hashes = new SongHashes();
    // Never 0: on TLS a non-zero stream id is what tells pushed radio frames from answers.
    const stationId = 1 + Math.floor(Math.random() * 0xfffffffe);
    const relay = options.relay && new RelayHub({ ...options.relay, station, stationId, log });
    this.relay = relay;
    const ctx = {
      catalog,
      hashes,
      station,
      program: this.program,
      stationId,
      radioMaxPayload,
      sendQueueBytes: options.sendQueueBytes ?? 1024 * 1024,
      frameCache: new WeakMap<StationEvent, Uint8Array[]>(),
      log,
      ...(relay ? { relay } : {}),
    };
    log("listening", {
      hostname: this.addr.hostname,
      port: this.addr.port,
      songs: catalog.songs.length,
      tls: serverTlsSetup.engine,
    });
    const stationDone = catalog.songs.length > 0 && !options.station
      ? station.run()
      : Promise.resolve();
    void hashes.warm(catalog.songs, signal);
    const watchdog = setInterval(
      () => this.#watch(idleTimeoutMs),
      Math.max(50, Math.min(1000, idleTimeoutMs / 4)),
    );
    const accepting = acceptTls(listener, {
      secureContext: serverTlsSetup.secureContext,
      nativeContext: serverTlsSetup.nativeContext,
      signal,
      handshakeTimeoutMs,
      maxPendingPerIp: options.maxHandshakesPerIp ?? 64,
      maxPending: options.maxHandshakes ?? 256,
      log,
      onConnection: (conn) =>
        options.onHttp
          ? void this.#sniff(
            conn,
            options.onHttp,
            handshakeTimeoutMs,
            () => this.#serve(conn, ctx, maxClients, maxClientsPerIp),
          )
          : this.#serve(conn, ctx, maxClients, maxClientsPerIp),
    }, this.stats);
    this.finished = (async () => {
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      clearInterval(watchdog);
      await accepting; // acceptTls closes the listener when the signal aborts
      log("shutdown", { clients: this.#sessions.size });
      await Promise.all(
        [...this.#sessions].map((s) => s.closeWithError("shutdown", "The server is stopping", 500)),
      );
      for (const s of this.#sessions) s.close();
      await stationDone.catch(() => {});
    })();
  }

  /**
   * Listens and starts the station; the returned server is ready for clients.
   * @throws {ServerIdentityError} the certificate or key cannot be used
   * @throws {ListenError} the address cannot be taken (in use, not on this machine, no right)
   */
  static start(options: TlsSongServerOptions): TlsSongServer {
    return new TlsSongServer(options);
  }

  /** Number of radio listeners connected now. */
  get listeners(): number {
    return [...this.#sessions].filter((s) => s.listening).length;
  }

  /** Bytes held in the server for each connected client (send queue + TLS buffers). */
  clientBufferedBytes(): number[] {
    return [...this.#sessions].map((s) => s.bufferedBytes);
  }

  /** Stops the server; resolves when everything is closed. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.finished;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Clients per source address ({@linkcode sourceKey}; served or being refused). */
  readonly #perIp = new Map<string, number>();
  /** Connections whose first bytes are awaited (shared port). */
  #sniffing = 0;

  /**
   * Shared port: waits (at most `timeoutMs`, at most 256 connections at once) for the first two
   * bytes; `SK` starts a session, anything else is HTTP.
   */
  async #sniff(
    conn: ServerConnection,
    onHttp: (conn: ServerConnection) => void,
    timeoutMs: number,
    serve: () => void,
  ): Promise<void> {
    if (this.#sniffing >= 256) return conn.close(0);
    this.#sniffing++;
    const timer = setTimeout(() => conn.close(0), timeoutMs);
    let head: Uint8Array;
    try {
      head = await conn.peek(2);
    } finally {
      clearTimeout(timer);
      this.#sniffing--;
    }
    if (head.length === 0) return conn.close(0);
    if (head[0] === 0x53 && (head.length < 2 || head[1] === 0x4b)) serve();
    else onHttp(conn);
  }

  #serve(
    conn: ServerConnection,
    ctx: ConstructorParameters<typeof Session>[1],
    maxClients: number,
    maxClientsPerIp: number,
  ): void {
    const session = new Session(conn, ctx);
    const ip = sourceKey(conn.remoteAddr.hostname);
    const fromIp = (this.#perIp.get(ip) ?? 0) + 1;
    this.#perIp.set(ip, fromIp);
    // Sessions being refused still hold a socket for up to 2 s: past this ceiling they are
    // closed without a word, so a flood of refused clients cannot pile up descriptors.
    const refusing = this.#sessions.size - this.stats.active;
    this.#sessions.add(session);
    void (async () => {
      try {
        if (this.stats.active >= maxClients || (maxClientsPerIp > 0 && fromIp > maxClientsPerIp)) {
          this.stats.rejected++;
          if (refusing >= 64) return;
          if (this.stats.active >= maxClients) {
            await session.reject("server_full", `The server is full (${maxClients} clients)`);
          } else {
            await session.reject(
              "busy",
              `Too many connections from your address (${maxClientsPerIp}); close one first`,
            );
          }
          return;
        }
        this.stats.active++;
        try {
          await session.run();
        } finally {
          this.stats.active--;
        }
      } finally {
        session.close();
        this.#sessions.delete(session);
        const left = (this.#perIp.get(ip) ?? 1) - 1;
        if (left > 0) this.#perIp.set(ip, left);
        else this.#perIp.delete(ip);
      }
    })();
  }

  #watch(idleTimeoutMs: number): void {
    const now = performance.now();
    for (const s of this.#sessions) {
      if (s.state !== "open") continue;
      if (s.queue.busy && now - s.queue.lastProgress > idleTimeoutMs) {
        // The peer stopped reading in the middle of a write.
        void s.close("write_stalled", { ms: Math.round(now - s.queue.lastProgress) });
      } else if (
        !s.listening && !s.inRequest && !s.queue.busy && now - s.lastRequestAt > idleTimeoutMs
      ) {
        void s.closeWithError("timeout", `No request for ${Math.round(idleTimeoutMs / 1000)} s`);
      }
    }
  }
}
