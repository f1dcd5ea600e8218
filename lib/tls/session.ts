/**
 * One client connection of tls-server: reads frames, answers requests (docs/PROTOCOL.md §5.3),
 * streams downloads and the radio through the connection's bounded {@linkcode SendQueue}.
 * A session never throws: every failure ends in a log event and a closed connection.
 *
 * @module
 */

import {
  type Frame,
  FrameError,
  FrameFlag,
  FrameType,
  frameTypeName,
  writeHeader,
} from "../wire/frame.ts";
import { readFrames } from "../wire/stream_decoder.ts";
import {
  encodeControl,
  type ErrorBody,
  MAX_CONTROL_PAYLOAD,
  MessageError,
  readRequest,
  type Request,
  type SongList,
} from "../wire/messages.ts";
import { SongCatalog } from "../songs/catalog.ts";
import type { Station, StationEvent } from "../media/station.ts";
import type { EventFields } from "../cli/event_log.ts";
import { SendQueue } from "./send_queue.ts";
import { BadOffsetError, sendSongFile } from "./download.ts";
import type { SongHashes } from "./song_hashes.ts";
import type { ServerConnection } from "./server_conn.ts";
import type { RadioProgram } from "../station/radio_program.ts";

/** What every session shares: the library, the station and the server's settings. */
export interface SessionContext {
  catalog: SongCatalog;
  hashes: SongHashes;
  station: Station;
  program: RadioProgram;
  /** Stream id of the station, in every radio frame. */
  stationId: number;
  /** Largest radio DATA payload. */
  radioMaxPayload: number;
  /** Per-connection send queue bound in bytes. */
  sendQueueBytes: number;
  /** Radio frames encoded once for every listener. */
  frameCache: WeakMap<StationEvent, Uint8Array[]>;
  /** Records an event (the --log file). */
  log: (event: string, fields: EventFields) => void;
  /** The relay overlay (tls-server --relay-fanout, lib/relay/hub.ts): gets RELAY frames. */
  relay?: { onFrame(session: Session, frame: Frame): void; drop(session: Session): void };
}

/** Connection state the server's watchdog looks at. */
export type SessionState = "open" | "closing" | "closed";

let nextSessionId = 1;

/** One client connection. */
export class Session {
  /** Number for logs. */
  readonly id = nextSessionId++;
  /** The peer's address, for logs. */
  readonly remote: string;
  readonly #conn: ServerConnection;
  readonly #ctx: SessionContext;
  readonly queue: SendQueue;
  /** performance.now() when the connection was accepted. */
  readonly acceptedAt = performance.now();
  /** performance.now() of the last REQUEST received (HEARTBEATs do not keep a slot). */
  lastRequestAt = performance.now();
  /** Open (handshake done), closing, or closed. */
  state: SessionState = "open";
  /** A request is being served (a download in progress). */
  inRequest = false;
  /** Joined the relay overlay (docs/PROTOCOL.md §9): counts as a radio listener. */
  relayMember = false;
  #unsubscribe: (() => void) | undefined;
  readonly #abort = new AbortController();
  #closedResolve!: () => void;
  /** Resolves when the connection is closed. */
  readonly closed: Promise<void> = new Promise((r) => (this.#closedResolve = r));

  /** Wraps a connection whose TLS handshake is complete; call {@linkcode run}. */
  constructor(conn: ServerConnection, ctx: SessionContext) {
    this.#conn = conn;
    this.#ctx = ctx;
    const addr = conn.remoteAddr;
    this.remote = `${addr.hostname}:${addr.port}`;
    this.queue = new SendQueue(conn, {
      maxBytes: ctx.sendQueueBytes,
      onError: (error) => this.close("write_failed", { error: error.message }),
    });
  }

  /** Bytes held for this client in the server: the send queue plus the TLS layer's buffers. */
  get bufferedBytes(): number {
    return this.queue.queuedBytes + this.#conn.bufferedBytes;
  }

  /** Whether this session listens to the radio. */
  get listening(): boolean {
    return this.#unsubscribe !== undefined || this.relayMember;
  }

  /** Refuses the client (server full) and closes. */
  async reject(code: "server_full" | "busy", reason: string): Promise<void> {
    this.#log("reject", { code, reason });
    this.queue.offer(encodeControl(FrameType.REJECT, { code, reason }));
    await this.#closeAfterFlush(2000);
  }

  /** Serves requests until the peer leaves, misbehaves or the session is closed. */
  async run(): Promise<void> {
    this.#log("connect", {});
    try {
      for await (
        // Clients send only small control frames (a request is ~50 bytes): a small read
        // buffer per connection keeps a thousand radio listeners at icecast2's memory (16 KiB
        // cost 15–28 KiB per listener), and a header announcing more than a control payload
        // is refused before any of it is buffered.
        const frame of readFrames(this.#conn, {
          signal: this.#abort.signal,
          readSize: 256,
          maxPayload: MAX_CONTROL_PAYLOAD,
        })
      ) {
        if (frame.type === FrameType.REQUEST) this.lastRequestAt = performance.now();
        if (!(await this.#onFrame(frame))) break;
      }
    } catch (error) {
      if (this.state === "open") {
        if (error instanceof FrameError) {
          // The stream position is lost, but the peer can still be told why it is dropped.
          this.#log("bad_frame", { code: error.code, error: error.message });
          await this.closeWithError("bad_request", `Invalid frame: ${error.message}`, 500);
        } else if (!(error instanceof DOMException && error.name === "AbortError")) {
          this.#log("read_failed", { error: (error as Error).message });
        }
      }
    }
    this.close("disconnect");
  }

  /** Ends the session after sending ERROR `code` (best effort, bounded wait). */
  async closeWithError(code: ErrorBody["code"], message: string, waitMs = 1000): Promise<void> {
    if (this.state !== "open") return;
    this.#log(code, { message });
    this.#stopRadio();
    this.queue.abandon(encodeControl(FrameType.ERROR, { code, message }));
    await this.#closeAfterFlush(waitMs);
  }

  /** Closes the connection now. Idempotent. */
  close(reason?: string, fields: EventFields = {}): void {
    if (this.state === "closed") return;
    const wasOpen = this.state === "open" || this.state === "closing";
    this.state = "closed";
    this.#stopRadio();
    this.#ctx.relay?.drop(this);
    this.#abort.abort();
    this.queue.close();
    this.#conn.close(); // idempotent, never throws
    if (reason && wasOpen) this.#log(reason, fields);
    this.#closedResolve();
  }

  async #closeAfterFlush(waitMs: number): Promise<void> {
    if (this.state === "open") this.state = "closing";
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.queue.drained(),
      new Promise<void>((r) => (timer = setTimeout(r, waitMs))),
    ]);
    clearTimeout(timer);
    this.close();
  }

  /** Returns false when the connection should end. */
  async #onFrame(frame: Frame): Promise<boolean> {
    switch (frame.type) {
      case FrameType.REQUEST:
        break;
      case FrameType.BYE:
        this.#log("bye", {});
        return false;
      case FrameType.HEARTBEAT:
        return true;
      case FrameType.RELAY:
        if (this.#ctx.relay) this.#ctx.relay.onFrame(this, frame);
        else this.#error("bad_request", "this server does not relay (no --relay-fanout)");
        return true;
      default:
        this.#error("bad_request", `a client does not send ${frameTypeName(frame.type)} frames`);
        return true;
    }
    let request: Request;
    try {
      request = readRequest(frame);
    } catch (error) {
      if (!(error instanceof MessageError)) throw error;
      this.#log("bad_request", { error: error.message });
      this.#error("bad_request", error.message);
      return true;
    }
    this.#log("request", { ...request });
    await this.#handle(request);
    return this.state === "open";
  }

  async #handle(request: Request): Promise<void> {
    const ctx = this.#ctx;
    switch (request.op) {
      case "list":
        this.#send(FrameType.SONG_LIST, songListPage(ctx.catalog, request.offset ?? 0));
        return;
      case "get":
        if (this.listening) {
          this.#error("bad_request", "cannot download while listening to the radio");
          return;
        }
        return await this.#get(request.song, request.offset ?? 0);
      case "radio":
        return this.#radio();
      case "play": {
        const { result, message, song } = ctx.program.request(request.song);
        this.#log("play_request", { song: request.song, result, title: song?.title });
        this.#send(FrameType.PLAY_RESULT, { result, message });
        return;
      }
      case "requests":
        this.#send(FrameType.QUEUE, { queue: ctx.program.queue() });
        return;
      case "now_playing": {
        const now = ctx.station.nowPlaying();
        if (now) this.#send(FrameType.NOW_PLAYING, now);
        else this.#error("not_found", "The station has not started a song yet");
        return;
      }
      case "song":
        this.#error("bad_request", `"song" is a UDP request; over TLS use "get"`);
        return;
    }
  }

  async #get(name: string, offset: number): Promise<void> {
    const ctx = this.#ctx;
    const song = ctx.catalog.find(name);
    if (!song) {
      this.#log("not_found", { song: name });
      this.#error("not_found", ctx.catalog.notFoundMessage(name));
      return;
    }
    this.inRequest = true;
    const started = performance.now();
    try {
      const sha256 = await ctx.hashes.get(song, this.#abort.signal);
      const end = await sendSongFile(this.queue, ctx.catalog, song, {
        sha256,
        offset,
        signal: this.#abort.signal,
      });
      if (end) {
        this.#log("get_done", {
          title: song.title,
          bytes: end.bytes,
          ms: Math.round(performance.now() - started),
        });
      }
    } catch (error) {
      if (error instanceof BadOffsetError) {
        this.#error("bad_request", error.message);
      } else if (this.state === "open") {
        // Part of the file may already be queued: the stream position is unreliable, close.
        this.#log("get_failed", { title: song.title, error: (error as Error).message });
        await this.closeWithError("internal", `Cannot send "${song.title}"`);
      }
    } finally {
      this.inRequest = false;
    }
  }

  #radio(): void {
    const ctx = this.#ctx;
    if (this.listening) {
      this.#error("bad_request", "already listening to the radio");
      return;
    }
    this.#send(FrameType.ACCEPT, { op: "radio", maxPayload: ctx.radioMaxPayload });
    // The server itself holds one subscription (logging), so this count includes the newcomer.
    this.#log("radio_join", { listeners: ctx.station.listenerCount });
    // subscribe() replays the join burst synchronously: that burst may exceed the queue bound
    // (it is bounded by the station's joinBurstMs), so it is queued regardless.
    let joining = true;
    this.#unsubscribe = ctx.station.subscribe((event) => {
      if (this.state !== "open") return;
      if (!this.#offerAll(this.#radioFrames(event), joining)) {
        void this.closeWithError("too_slow", "You could not keep up with the radio; disconnected");
      }
    });
    joining = false;
  }

  #stopRadio(): void {
    if (!this.#unsubscribe) return;
    this.#unsubscribe();
    this.#unsubscribe = undefined;
    this.#log("radio_leave", {});
  }

  #offerAll(frames: Uint8Array[], force = false): boolean {
    for (const f of frames) if (!this.queue.offer(f, force)) return false;
    return true;
  }

  /** The frames for a station event, encoded once and shared by all listeners. */
  #radioFrames(event: StationEvent): Uint8Array[] {
    const cache = this.#ctx.frameCache;
    let frames = cache.get(event);
    if (!frames) {
      frames = encodeStationEvent(event, this.#ctx.stationId);
      cache.set(event, frames);
    }
    return frames;
  }

  #send(type: FrameType, body: unknown): void {
    // Answers are small; if even they do not fit, the peer has stopped reading.
    if (!this.queue.offer(encodeControl(type, body))) {
      void this.closeWithError("too_slow", "You are not reading the answers; disconnected");
    }
  }

  #error(code: ErrorBody["code"], message: string): void {
    this.#send(FrameType.ERROR, { code, message });
  }

  #log(event: string, fields: EventFields): void {
    this.#ctx.log(event, { session: this.id, remote: this.remote, ...fields });
  }
}

/** Encodes a station event as frames: NOW_PLAYING + STREAM_INFO, or one DATA frame. */
export function encodeStationEvent(event: StationEvent, stationId: number): Uint8Array[] {
  if (event.type === "song") {
    return [
      encodeControl(FrameType.NOW_PLAYING, event.nowPlaying, { streamId: stationId }),
      // Its sequence field names the SONG_START frame it describes (PROTOCOL.md §2).
      encodeControl(FrameType.STREAM_INFO, event.info, {
        streamId: stationId,
        sequence: event.sequence,
      }),
    ];
  }
  const p = event.packet;
  const frame = new Uint8Array(32 + p.payload.length);
  frame.set(p.payload, 32);
  writeHeader(frame, {
    type: FrameType.DATA,
    streamId: stationId,
    sequence: p.sequence,
    timestamp: p.timestampUs,
    flags: p.songStart ? FrameFlag.SONG_START : 0,
  }, p.payload);
  return [frame];
}

/** The song list from `offset`, as many entries as fit one control frame. */
export function songListPage(catalog: SongCatalog, offset: number): SongList {
  return catalog.page(offset, MAX_CONTROL_PAYLOAD);
}
