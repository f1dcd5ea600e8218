/**
 * The client side of docs/PROTOCOL.md §5.3: one TLS connection, requests one at a time, and the
 * radio subscription. Server refusals become typed errors with the exit status 3.
 *
 * @module
 */

import { escapePeerText as peer } from "../cli/output.ts";
import { type Frame, FrameType, frameTypeName, STREAM_MAX_PAYLOAD } from "../wire/frame.ts";
import { readFrames } from "../wire/stream_decoder.ts";
import {
  encodeControl,
  type End,
  type NowPlaying,
  type PlayResult,
  type QueueEntry,
  readEnd,
  readError,
  readNowPlaying,
  readPlayResult,
  readQueue,
  readReject,
  readSongList,
  readStreamInfo,
  type Request,
  type SongEntry,
  type StreamInfo,
} from "../wire/messages.ts";
import {
  type ClientConn,
  type ConnectOptions,
  connectToServer,
  type ServerAddress,
} from "./connect.ts";
import { closeQuietly } from "../net/close.ts";

/** The server said no: song not found, server full, bad request. Exit status 3. */
export class ServerRefusedError extends Error {
  /** Exit status: refused by the peer. */
  readonly exitCode = 3;
  /** The protocol code (`not_found`, `server_full`, …). */
  readonly code: string;
  /** Creates the error; `message` is user-facing. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "ServerRefusedError";
    this.code = code;
  }
}

/** The connection broke or the server misbehaved. Exit status 1. */
export class ServerConnectionError extends Error {
  /** Exit status: error. */
  readonly exitCode = 1;
  /** Creates the error; `message` is user-facing. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ServerConnectionError";
  }
}

/** Callbacks of {@linkcode TlsSongClient.download}. */
export interface DownloadOptions {
  /** First byte wanted. @default {0} */
  offset?: number;
  /** Called with STREAM_INFO before any data. */
  onInfo?: (info: StreamInfo) => void | Promise<void>;
  /** Called with each DATA payload, in order. */
  onData?: (payload: Uint8Array) => void | Promise<void>;
  /** Cancels (closes the connection). */
  signal?: AbortSignal;
}

/** What a radio subscription yields. */
export type RadioEvent =
  | { type: "now_playing"; nowPlaying: NowPlaying }
  | { type: "stream_info"; info: StreamInfo }
  | { type: "data"; payload: Uint8Array; songStart: boolean; timestampUs: number; sequence: number }
  | { type: "answer"; frame: Frame };

/** A connection to tls-server. */
export class TlsSongClient implements Disposable {
  /** `host:port` for messages. */
  readonly server: string;
  /** SHA-256 of the server's certificate when known (pin / insecure modes). */
  readonly peerPin: string | undefined;
  readonly #conn: ClientConn;
  readonly #frames: AsyncGenerator<Frame, void, undefined>;
  readonly #timeoutMs: number;
  #closed = false;

  private constructor(
    server: string,
    conn: ClientConn,
    timeoutMs: number,
    peerPin: string | undefined,
  ) {
    this.server = server;
    this.#conn = conn;
    this.#timeoutMs = timeoutMs;
    this.peerPin = peerPin;
    this.#frames = readFrames(conn, { readSize: 256 * 1024, maxPayload: STREAM_MAX_PAYLOAD });
  }

  /**
   * Connects (see {@linkcode connectToServer} for the trust modes).
   *
   * @throws {TlsConnectError}
   */
  static async connect(
    address: ServerAddress,
    options: ConnectOptions = {},
  ): Promise<TlsSongClient> {
    const { conn, peerPin } = await connectToServer(address, options);
    return new TlsSongClient(
      `${address.hostname}:${address.port}`,
      conn,
      options.timeoutMs ?? 10_000,
      peerPin,
    );
  }

  /** Sends a request frame. */
  async send(request: Request): Promise<void> {
    const bytes = encodeControl(FrameType.REQUEST, request);
    let at = 0;
    try {
      while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
    } catch (cause) {
      throw new ServerConnectionError(`Lost the connection to ${this.server}`, { cause });
    }
  }

  /**
   * The next frame from the server. Waits at most the client timeout unless `timeoutMs` is 0
   * (the radio waits as long as the station is silent).
   */
  async next(timeoutMs = this.#timeoutMs, signal?: AbortSignal): Promise<Frame> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.close();
          reject(
            new ServerConnectionError(
              `No answer from ${this.server} within ${Math.round(timeoutMs / 1000)} s`,
            ),
          );
        }, timeoutMs);
      }
      if (signal) {
        onAbort = () => {
          this.close();
          reject(signal.reason);
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      }
    });
    try {
      const result = await Promise.race([this.#frames.next(), stop]);
      if (result.done) {
        throw new ServerConnectionError(`${this.server} closed the connection`);
      }
      const frame = result.value;
      if (frame.type === FrameType.REJECT) {
        const r = readReject(frame);
        throw new ServerRefusedError(
          r.code,
          r.code === "server_full"
            ? `Server ${this.server} is full — try again later`
            : peer(r.reason),
        );
      }
      if (frame.type === FrameType.ERROR) {
        const e = readError(frame);
        if (e.code === "not_found" || e.code === "bad_request") {
          throw new ServerRefusedError(e.code, peer(e.message));
        }
        throw new ServerConnectionError(`Server ${this.server}: ${peer(e.message)} (${e.code})`);
      }
      return frame;
    } catch (error) {
      if (error instanceof ServerRefusedError || error instanceof ServerConnectionError) {
        throw error;
      }
      if (signal?.aborted) throw signal.reason;
      if (this.#closed && !(error instanceof Error && error.name === "FrameError")) throw error;
      throw new ServerConnectionError(
        `Lost the connection to ${this.server}: ${(error as Error).message}`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  async #expect(type: FrameType, signal?: AbortSignal): Promise<Frame> {
    const frame = await this.next(undefined, signal);
    if (frame.type !== type) {
      throw new ServerConnectionError(
        `Unexpected ${frameTypeName(frame.type)} from ${this.server} (expected ${
          frameTypeName(type)
        })`,
      );
    }
    return frame;
  }

  /** The whole song list (following pages if the server splits it). */
  async list(signal?: AbortSignal): Promise<SongEntry[]> {
    const songs: SongEntry[] = [];
    for (;;) {
      await this.send({ op: "list", offset: songs.length });
      const page = readSongList(await this.#expect(FrameType.SONG_LIST, signal));
      songs.push(...page.songs);
      if (songs.length >= page.total || page.songs.length === 0) return songs;
    }
  }

  /** Asks the radio to play a song; resolves with the server's exact answer. */
  async requestSong(song: string, signal?: AbortSignal): Promise<PlayResult> {
    await this.send({ op: "play", song });
    return readPlayResult(await this.#expect(FrameType.PLAY_RESULT, signal));
  }

  /** The radio's request queue, next first. */
  async queue(signal?: AbortSignal): Promise<QueueEntry[]> {
    await this.send({ op: "requests" });
    return readQueue(await this.#expect(FrameType.QUEUE, signal)).queue;
  }

  /** What the radio plays now. */
  async nowPlaying(signal?: AbortSignal): Promise<NowPlaying> {
    await this.send({ op: "now_playing" });
    return readNowPlaying(await this.#expect(FrameType.NOW_PLAYING, signal));
  }

  /**
   * Downloads a song: STREAM_INFO, DATA…, END. Checks that the bytes add up to what was
   * announced (the caller checks the SHA-256, see {@linkcode AtomicFile}).
   *
   * @throws {ServerRefusedError} (`not_found`) for an unknown song.
   */
  async download(
    song: string,
    options: DownloadOptions = {},
  ): Promise<{ info: StreamInfo; end: End }> {
    await this.send({ op: "get", song, offset: options.offset ?? 0 });
    const info = readStreamInfo(await this.#expect(FrameType.STREAM_INFO, options.signal));
    await options.onInfo?.(info);
    let bytes = 0;
    const expected = (info.size ?? 0) - (info.offset ?? 0);
    for (;;) {
      const frame = await this.next(undefined, options.signal);
      if (frame.type === FrameType.DATA) {
        bytes += frame.payload.length;
        if (bytes > expected) {
          throw new ServerConnectionError(`${this.server} sent more bytes than announced`);
        }
        await options.onData?.(frame.payload);
        continue;
      }
      if (frame.type === FrameType.END) {
        const end = readEnd(frame);
        if (bytes !== expected || end.bytes !== bytes) {
          throw new ServerConnectionError(
            `Download of "${peer(info.title)}" is incomplete (${bytes} of ${expected} bytes)`,
          );
        }
        return { info, end };
      }
      throw new ServerConnectionError(`Unexpected ${frameTypeName(frame.type)} during a download`);
    }
  }

  /**
   * Subscribes to the radio and yields its events until `signal` aborts or the server closes.
   * Answers to requests sent meanwhile come out as `answer` events.
   */
  async *radio(signal?: AbortSignal): AsyncGenerator<RadioEvent, void, undefined> {
    await this.send({ op: "radio" });
    await this.#expect(FrameType.ACCEPT, signal);
    for (;;) {
      const frame = await this.next(0, signal);
      switch (frame.type) {
        case FrameType.NOW_PLAYING:
          yield { type: "now_playing", nowPlaying: readNowPlaying(frame) };
          break;
        case FrameType.STREAM_INFO:
          yield { type: "stream_info", info: readStreamInfo(frame) };
          break;
        case FrameType.DATA:
          yield {
            type: "data",
            payload: frame.payload,
            songStart: (frame.flags & 1) !== 0,
            timestampUs: frame.timestamp,
            sequence: frame.sequence,
          };
          break;
        default:
          yield { type: "answer", frame };
      }
    }
  }

  /** Says goodbye (best effort) and closes. */
  async bye(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#conn.write(encodeControl(FrameType.BYE, undefined));
    } catch { /* already gone */ }
    this.close();
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
