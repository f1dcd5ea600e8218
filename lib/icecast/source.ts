/**
 * Publishes the radio station to Icecast as an Ogg/Opus source client (RFC 7845): an HTTP PUT to
 * the mount with Basic auth and `Content-Type: audio/ogg`, then OpusHead, OpusTags and audio
 * pages made of the station's own Opus frames (no re-encoding; one continuous logical stream per
 * connection, granules counted from 0 with pre-skip = the station encoder's lookahead). Written on
 * a plain TCP socket rather than fetch, because Icecast expects a raw body after its answer.
 *
 * - Titles: on each song change, Icecast's metadata update (`GET /admin/metadata?mount=…&
 *   mode=updinfo&song=TITLE` with the source credentials); each connection's OpusTags carry the
 *   current TITLE too. Icecast 2.4.4 refuses the update on Ogg mounts ("Mountpoint will not
 *   accept URL updates", HTTP 200, `<return>1</return>`) and does not read OpusTags into its
 *   statistics: that is logged once (`icecast_title_refused`) and not retried. (A chained stream
 *   with a new OpusTags per song was tried: 2.4.4 still shows no title, and ffmpeg's Ogg demuxer
 *   fails on the chain, so it is not done.)
 * - Reconnects: backoff doubling to 30 s, reset after a connection that lasted 10 s. Audio made
 *   while disconnected (or while Icecast is slow) waits in a bounded buffer (10 s); beyond it
 *   the oldest frames are dropped and counted.
 * - A PCM station cannot be published (Icecast relays a codec; this source sends Opus): said once
 *   (`icecast_needs_opus`), and nothing connects.
 *
 * @module
 */

import type { StationEvent } from "../media/station.ts";
import type { EventFields } from "../cli/event_log.ts";
import { splitOpusPayload } from "../station/encoder.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { OggOpusMuxer } from "./ogg_opus.ts";
import type { IcecastUrl } from "./url.ts";

/** Options for {@linkcode IcecastSource}. */
export interface IcecastSourceOptions {
  /** Stops publishing. */
  signal: AbortSignal;
  /** Event sink (icecast_connected, icecast_error, icecast_title, icecast_drop…). */
  log?: (event: string, fields: EventFields) => void;
  /**
   * The Opus pre-skip (the station encoder's lookahead, `Station.lookahead`), read at each
   * connection. @default {() => 312} (libopus's lookahead at 48 kHz)
   */
  preSkip?: () => number;
  /** Audio kept while disconnected or slow, in ms; older frames are dropped. @default {10000} */
  bufferMs?: number;
  /** Reconnect delays. @default {{ initialMs: 1000, maxMs: 30000, stableMs: 10000 }} */
  backoff?: BackoffOptions;
}

type Entry = { packet: Uint8Array } | { title: string };

const FRAME_MS = 20;

/** An Icecast Ogg/Opus source client fed by station events. */
export class IcecastSource {
  readonly #url: IcecastUrl;
  readonly #options: IcecastSourceOptions;
  #pending: Entry[] = [];
  #pendingFrames = 0;
  #wake: (() => void) | undefined;
  #conn: Deno.Conn | undefined;
  #started = false;
  #pcm = false;
  #title = "";
  #refused = false;
  #dropping = false;
  #done!: () => void;
  /** Ogg bytes handed to Icecast. */
  bytesSent = 0;
  /** Opus frames dropped because the buffer was full. */
  framesDropped = 0;
  /** Connections that reached Icecast. */
  connections = 0;
  /** Resolves when stopped. */
  readonly closed: Promise<void>;

  /** Connects at the first Opus song event. */
  constructor(url: IcecastUrl, options: IcecastSourceOptions) {
    this.#url = url;
    this.#options = options;
    this.closed = new Promise((resolve) => this.#done = resolve);
    options.signal.addEventListener("abort", () => {
      if (!this.#started) this.#done();
      this.#wake?.();
      try {
        this.#conn?.close();
      } catch { /* closed */ }
    }, { once: true });
  }

  /** Where it publishes, without the password. */
  get description(): string {
    return `icecast http://${this.#url.hostname}:${this.#url.port}${this.#url.mount}`;
  }

  /** Feeds one station event (subscribe this to the station). */
  onStationEvent(event: StationEvent): void {
    if (this.#options.signal.aborted) return;
    if (event.type === "song") {
      if (event.info.codec !== "opus") {
        if (!this.#pcm) {
          this.#log("icecast_needs_opus", {
            codec: event.info.codec,
            reason: "Icecast needs the Opus station (--radio-codec opus); not publishing",
          });
        }
        this.#pcm = true;
        return;
      }
      this.#pcm = false;
      this.#title = event.info.title;
      this.#push({ title: event.info.title });
      if (!this.#started) {
        this.#started = true;
        this.#run().finally(() => this.#done());
      }
      return;
    }
    if (this.#pcm || !this.#started) return;
    for (const packet of splitOpusPayload(event.packet.payload)) this.#push({ packet });
  }

  #push(entry: Entry): void {
    this.#pending.push(entry);
    if ("packet" in entry) this.#pendingFrames++;
    const max = Math.max(1, Math.floor((this.#options.bufferMs ?? 10_000) / FRAME_MS));
    let dropped = 0;
    while (this.#pendingFrames > max) {
      const e = this.#pending.shift()!;
      if ("packet" in e) {
        this.#pendingFrames--;
        dropped++;
      }
    }
    if (dropped > 0) {
      this.framesDropped += dropped;
      if (!this.#dropping) this.#log("icecast_drop", { reason: "buffer full" });
      this.#dropping = true;
    }
    this.#wake?.();
  }

  #log(event: string, fields: EventFields): void {
    this.#options.log?.(event, fields);
  }

  async #run(): Promise<void> {
    const { signal } = this.#options;
    const backoff = new Backoff(this.#options.backoff);
    while (!signal.aborted) {
      let connectedAt: number | undefined;
      try {
        await this.#session(() => connectedAt = performance.now());
      } catch (error) {
        if (signal.aborted) break;
        this.#log("icecast_error", { error: (error as Error).message });
      }
      backoff.ended(connectedAt === undefined ? 0 : performance.now() - connectedAt);
      if (signal.aborted) break;
      const wait = backoff.delay();
      this.#log("icecast_retry", { retryMs: wait });
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  }

  /** One connection: handshake, then Ogg pages until it fails. */
  async #session(onConnected: () => void): Promise<void> {
    const u = this.#url;
    const conn = await Deno.connect({ hostname: u.hostname, port: u.port });
    this.#conn = conn;
    try {
      const head = [
        `PUT ${u.mount} HTTP/1.1`,
        `Host: ${u.hostname}:${u.port}`,
        `Authorization: Basic ${btoa(`${u.user}:${u.password}`)}`,
        "User-Agent: soundsock tls-server",
        "Content-Type: audio/ogg",
        "Ice-Public: 0",
        "Ice-Name: soundsock radio",
        "Expect: 100-continue",
        "",
        "",
      ].join("\r\n");
      await writeAll(conn, new TextEncoder().encode(head));
      const status = await readStatus(conn);
      if (status !== 100 && status !== 200) {
        throw new Error(
          status === 401
            ? "Icecast refused the source password (401)"
            : `Icecast answered ${status}`,
        );
      }
      onConnected();
      this.connections++;
      this.#log("icecast_connected", { mount: u.mount });
      // Icecast sends nothing more; a read that ends means it closed the connection.
      let closed = false;
      (async () => {
        const buf = new Uint8Array(1024);
        try {
          while ((await conn.read(buf)) !== null) { /* ignore */ }
        } catch { /* closed */ }
        closed = true;
        this.#wake?.();
      })();
      const mux = new OggOpusMuxer({
        preSkip: this.#options.preSkip?.() ?? 312,
        tags: this.#title ? { TITLE: this.#title } : {},
      });
      const send = async (pages: Uint8Array[]) => {
        for (const p of pages) {
          await writeAll(conn, p);
          this.bytesSent += p.length;
        }
      };
      await send(mux.headers());
      if (this.#title) void this.#updateTitle(this.#title);
      while (!this.#options.signal.aborted && !closed) {
        if (this.#pending.length === 0) {
          await new Promise<void>((resolve) => this.#wake = resolve);
          this.#wake = undefined;
          continue;
        }
        const entries = this.#pending;
        this.#pending = [];
        this.#pendingFrames = 0;
        this.#dropping = false;
        const frames: Uint8Array[] = [];
        for (const e of entries) {
          if ("packet" in e) {
            frames.push(e.packet);
            continue;
          }
          if (!this.#refused) void this.#updateTitle(e.title);
        }
        if (frames.length > 0) await send(mux.pages(frames));
      }
      if (closed) throw new Error("Icecast closed the connection");
    } finally {
      this.#conn = undefined;
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  /** Icecast's metadata update; a refusal is logged once and not retried. */
  async #updateTitle(title: string): Promise<void> {
    const u = this.#url;
    const host = u.hostname.includes(":") ? `[${u.hostname}]` : u.hostname;
    const query = new URLSearchParams({ mount: u.mount, mode: "updinfo", song: title });
    try {
      const r = await fetch(`http://${host}:${u.port}/admin/metadata?${query}`, {
        headers: { Authorization: `Basic ${btoa(`${u.user}:${u.password}`)}` },
        signal: AbortSignal.any([this.#options.signal, AbortSignal.timeout(5000)]),
      });
      const body = await r.text();
      // Icecast 2.4 answers 200 to a refusal too: "Mountpoint will not accept URL updates".
      if (r.ok && !/<return>0<\/return>|will not accept/i.test(body)) {
        this.#log("icecast_title", { title, answer: body.slice(0, 300) });
        return;
      }
      // Said once; each new connection's OpusTags still carry the title.
      if (this.#refused) return;
      this.#refused = true;
      this.#log("icecast_title_refused", { status: r.status, answer: body.slice(0, 200) });
    } catch (error) {
      if (!this.#options.signal.aborted) {
        this.#log("icecast_title_error", { title, error: (error as Error).message });
      }
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

/** Reads an HTTP status line and headers (bounded to 8 KiB); returns the status code. */
async function readStatus(conn: Deno.Conn): Promise<number> {
  const buf = new Uint8Array(8192);
  let len = 0;
  const timer = setTimeout(() => conn.close(), 10_000);
  try {
    while (len < buf.length) {
      const n = await conn.read(buf.subarray(len));
      if (n === null) throw new Error("Icecast closed the connection before answering");
      len += n;
      const text = new TextDecoder().decode(buf.subarray(0, len));
      if (text.includes("\r\n\r\n")) {
        const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
        if (!m) throw new Error("Icecast did not answer with HTTP");
        return Number(m[1]);
      }
    }
    throw new Error("Icecast's answer is too long");
  } finally {
    clearTimeout(timer);
  }
}
