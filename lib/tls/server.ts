/**
 * tls-server: serves the songs of one folder over TLS to many clients at once (downloads
 * with SHA-256, the song list) and runs a request radio that plays in real time from start to
 * shutdown, whether or not anyone listens. Protocol: docs/PROTOCOL.md §5.3.
 *
 * @module
 */

import { type EventFields, EventLog } from "../cli/event_log.ts";
import { Station, type StationEvent } from "../media/station.ts";
import type { SongCatalog } from "../songs/catalog.ts";
import { RadioProgram } from "./radio_program.ts";
import { Session } from "./session.ts";
import { SongHashes } from "./song_hashes.ts";

/** Options for {@linkcode TlsSongServer.start}. */
export interface TlsSongServerOptions {
  /** The songs to serve. */
  catalog: SongCatalog;
  /** Server certificate chain, PEM. */
  cert: string;
  /** Private key, PEM. */
  key: string;
  /** Address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one (see {@linkcode TlsSongServer.addr}). @default {8443} */
  port?: number;
  /** Most clients served at once; more get REJECT server_full. @default {64} */
  maxClients?: number;
  /**
   * A connection that sends no frame for this long while nothing is streaming to it, or whose
   * pending write makes no progress for this long, is closed.
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /** Time allowed for the TLS handshake. @default {10000} */
  handshakeTimeoutMs?: number;
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
  /** Extra station subscriber started with the server (the Icecast feed). */
  onStationEvent?: (event: StationEvent) => void;
}

/** Counters for tests, benchmarks and logs. */
export interface TlsServerStats {
  accepted: number;
  rejected: number;
  handshakeFailures: number;
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
  readonly stats: TlsServerStats = { accepted: 0, rejected: 0, handshakeFailures: 0, active: 0 };
  readonly #listener: Deno.TlsListener;
  readonly #sessions = new Set<Session>();
  readonly #stop = new AbortController();
  readonly #log: EventLog;
  #ctxLog: (event: string, fields: EventFields) => void = () => {};

  private constructor(options: TlsSongServerOptions) {
    const {
      catalog,
      maxClients = 64,
      idleTimeoutMs = 30_000,
      handshakeTimeoutMs = 10_000,
    } = options;
    this.#log = options.log ?? EventLog.none();
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#stop.signal])
      : this.#stop.signal;
    const listener = Deno.listenTls({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 8443,
      cert: options.cert,
      key: options.key,
    });
    this.#listener = listener;
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
    const station = new Station({
      maxPayload: radioMaxPayload,
      nextSong: () => this.program.next(),
      signal,
      joinBurstMs: options.joinBurstMs,
      onSkip: (song, error) => log("song_skipped", { title: song.title, error: error.message }),
    });
    this.station = station;
    station.subscribe((event) => {
      if (event.type === "song") {
        log("song_start", { ...event.nowPlaying, listeners: station.listenerCount - 1 });
      }
      options.onStationEvent?.(event);
    });
    const hashes = new SongHashes();
    const ctx = {
      catalog,
      hashes,
      station,
      program: this.program,
      stationId: (Math.random() * 0xffffffff) >>> 0,
      radioMaxPayload,
      sendQueueBytes: options.sendQueueBytes ?? 1024 * 1024,
      frameCache: new WeakMap<StationEvent, Uint8Array[]>(),
      log,
    };
    log("listening", {
      hostname: this.addr.hostname,
      port: this.addr.port,
      songs: catalog.songs.length,
    });
    const stationDone = catalog.songs.length > 0 ? station.run() : Promise.resolve();
    void hashes.warm(catalog.songs, signal);
    const watchdog = setInterval(
      () => this.#watch(idleTimeoutMs),
      Math.max(50, Math.min(1000, idleTimeoutMs / 4)),
    );
    this.#ctxLog = log;
    const accepting = this.#accept(ctx, maxClients, handshakeTimeoutMs);
    this.finished = (async () => {
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      clearInterval(watchdog);
      try {
        listener.close();
      } catch { /* already closed */ }
      await accepting;
      log("shutdown", { clients: this.#sessions.size });
      await Promise.all(
        [...this.#sessions].map((s) => s.closeWithError("shutdown", "The server is stopping", 500)),
      );
      for (const s of this.#sessions) s.close();
      await stationDone.catch(() => {});
    })();
  }

  /** Listens and starts the station; the returned server is ready for clients. */
  static start(options: TlsSongServerOptions): TlsSongServer {
    return new TlsSongServer(options);
  }

  /** Number of radio listeners connected now. */
  get listeners(): number {
    return [...this.#sessions].filter((s) => s.listening).length;
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

  async #accept(
    ctx: ConstructorParameters<typeof Session>[1],
    maxClients: number,
    handshakeTimeoutMs: number,
  ): Promise<void> {
    // Sockets still in handshake or being refused count too, up to a hard ceiling, so a flood
    // of half-open connections cannot exhaust file descriptors.
    const ceiling = maxClients + 64;
    let open = 0;
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // listener closed
      }
      if (open >= ceiling) {
        this.#ctxLog("drop_connection", { reason: "too many pending connections" });
        conn.close();
        continue;
      }
      open++;
      this.stats.accepted++;
      const session = new Session(conn, ctx);
      this.#sessions.add(session);
      void (async () => {
        try {
          if (!(await session.handshake(handshakeTimeoutMs))) {
            this.stats.handshakeFailures++;
            return;
          }
          if (this.stats.active >= maxClients) {
            this.stats.rejected++;
            await session.reject("server_full", `The server is full (${maxClients} clients)`);
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
          open--;
        }
      })();
    }
  }

  #watch(idleTimeoutMs: number): void {
    const now = performance.now();
    for (const s of this.#sessions) {
      if (s.state !== "open") continue;
      if (s.queue.busy && now - s.queue.lastProgress > idleTimeoutMs) {
        // The peer stopped reading in the middle of a write.
        void s.close("write_stalled", { ms: Math.round(now - s.queue.lastProgress) });
      } else if (
        !s.listening && !s.inRequest && !s.queue.busy && now - s.lastFrameAt > idleTimeoutMs
      ) {
        void s.closeWithError("timeout", `No request for ${Math.round(idleTimeoutMs / 1000)} s`);
      }
    }
  }
}
