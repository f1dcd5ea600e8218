/**
 * Publishes the radio station to Icecast as a source client: an HTTP PUT to the mount with Basic
 * auth, then a continuous stream in one of two formats, chosen by the mount's name:
 *
 * - **Ogg/Opus** (any mount not ending in `.mp3`, e.g. `/radio.opus`; RFC 7845): OpusHead,
 *   OpusTags and audio pages made of the station's own Opus frames (no re-encoding; one
 *   continuous logical stream per connection, granules counted from 0 with pre-skip = the
 *   station encoder's lookahead). Needs the Opus station.
 * - **MP3** (a mount ending in `.mp3`, `Content-Type: audio/mpeg`): the station decoded (Opus,
 *   or the PCM station as it is) and encoded once by LAME (lib/codec/lame.ts; 128 kbit/s CBR,
 *   48 kHz stereo). This is the format whose title Icecast 2.4 shows.
 *
 * Written on a plain TCP socket rather than fetch, because Icecast expects a raw body after its
 * answer.
 *
 * - Titles: on each song change, Icecast's metadata update (`GET /admin/metadata?mount=…&
 *   mode=updinfo&song=TITLE` with the source credentials). Icecast 2.4.4 accepts it on MP3
 *   mounts (status-json.xsl then shows the title) and refuses it on Ogg mounts ("Mountpoint
 *   will not accept URL updates", HTTP 200, `<return>1</return>`), nor does it read OpusTags
 *   into its statistics: on Ogg each connection's OpusTags carry the TITLE, and the refusal is
 *   logged once (`icecast_title_refused`) and not retried. (A chained Ogg stream with new
 *   OpusTags per song was tried: 2.4.4 still shows no title, and ffmpeg's Ogg demuxer fails on
 *   the chain.)
 * - Reconnects: backoff doubling to 30 s, reset after a connection that lasted 10 s. Audio made
 *   while disconnected (or while Icecast is slow) waits in a bounded buffer (10 s); beyond it
 *   the oldest frames are dropped and counted.
 * - A PCM station cannot be published on an Ogg/Opus mount (this source relays Opus frames):
 *   said once (`icecast_needs_opus`), and nothing connects. An MP3 mount takes either.
 *
 * @module
 */

import type { StationEvent } from "../media/station.ts";
import type { EventFields } from "../cli/event_log.ts";
import { splitOpusPayload } from "../station/encoder.ts";
import { OpusDecoder } from "../codec/opus.ts";
import { Mp3Encoder } from "../codec/lame.ts";
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
  /** Stream format. @default {"mp3" for a mount ending in ".mp3", else "ogg-opus"} */
  format?: IcecastFormat;
  /** MP3 bitrate in kbit/s. @default {128} */
  mp3BitrateKbps?: number;
}

/** What an {@linkcode IcecastSource} sends (see the module doc). */
export type IcecastFormat = "ogg-opus" | "mp3";

/** The format a mount's name implies: `.mp3` → MP3, anything else Ogg/Opus. */
export function icecastFormatOf(mount: string): IcecastFormat {
  return /\.mp3$/i.test(mount) ? "mp3" : "ogg-opus";
}

/**
 * A station frame waiting to be sent: an Opus packet, or (PCM station, MP3 mount) 20 ms or less
 * of s16le PCM; or a title change.
 */
type Entry = { packet: Uint8Array } | { pcm: Uint8Array } | { title: string };

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
  readonly #format: IcecastFormat;
  /** MP3: the station's Opus decoder, continuous across connections. */
  #decoder: OpusDecoder | undefined;
  /** Bytes handed to Icecast. */
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
    this.#format = options.format ?? icecastFormatOf(url.mount);
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
    const format = this.#format === "mp3" ? "MP3" : "Ogg/Opus";
    return `icecast http://${this.#url.hostname}:${this.#url.port}${this.#url.mount} (${format})`;
  }

  /** The stream format (from the mount's name unless given). */
  get format(): IcecastFormat {
    return this.#format;
  }

  /** Feeds one station event (subscribe this to the station). */
  onStationEvent(event: StationEvent): void {
    if (this.#options.signal.aborted) return;
    if (event.type === "song") {
      const codec = event.info.codec;
      if (codec !== "opus" && !(this.#format === "mp3" && codec === "pcm_s16le")) {
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
      this.#stationCodec = codec;
      this.#title = event.info.title;
      this.#push({ title: event.info.title });
      if (!this.#started) {
        this.#started = true;
        this.#run().finally(() => this.#done());
      }
      return;
    }
    if (this.#pcm || !this.#started) return;
    if (this.#stationCodec === "pcm_s16le") {
      // 20 ms pieces (3840 bytes of 48 kHz stereo s16le), so the buffer counts like Opus frames.
      const payload = event.packet.payload;
      for (let at = 0; at < payload.length; at += 3840) {
        this.#push({ pcm: payload.subarray(at, at + 3840) });
      }
      return;
    }
    for (const packet of splitOpusPayload(event.packet.payload)) this.#push({ packet });
  }

  #stationCodec: string | undefined;

  #push(entry: Entry): void {
    this.#pending.push(entry);
    if (!("title" in entry)) this.#pendingFrames++;
    const max = Math.max(1, Math.floor((this.#options.bufferMs ?? 10_000) / FRAME_MS));
    let dropped = 0;
    while (this.#pendingFrames > max) {
      const e = this.#pending.shift()!;
      if (!("title" in e)) {
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

  /** One connection: handshake, then the stream until it fails. */
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
        `Content-Type: ${this.#format === "mp3" ? "audio/mpeg" : "audio/ogg"}`,
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
      const send = async (pages: Uint8Array[]) => {
        for (const p of pages) {
          if (p.length === 0) continue;
          await writeAll(conn, p);
          this.bytesSent += p.length;
        }
      };
      const encode = await this.#encoderFor(send);
      try {
        await this.#stream(encode, () => closed);
      } finally {
        encode.close();
      }
      if (closed) throw new Error("Icecast closed the connection");
    } finally {
      this.#conn = undefined;
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  /**
   * The connection's encoder: `headers` (sent first), `frames` (a batch of entries to bytes)
   * and `close`. Ogg/Opus muxes the Opus frames; MP3 decodes them (or takes PCM) and encodes.
   */
  async #encoderFor(send: (pages: Uint8Array[]) => Promise<void>): Promise<{
    headers: () => Promise<void>;
    frames: (entries: Entry[]) => Promise<void>;
    close: () => void;
  }> {
    if (this.#format === "ogg-opus") {
      const mux = new OggOpusMuxer({
        preSkip: this.#options.preSkip?.() ?? 312,
        tags: this.#title ? { TITLE: this.#title } : {},
      });
      return {
        headers: () => send(mux.headers()),
        frames: (entries) => {
          const frames = entries.flatMap((e) => "packet" in e ? [e.packet] : []);
          return frames.length > 0 ? send(mux.pages(frames)) : Promise.resolve();
        },
        close: () => {},
      };
    }
    this.#decoder ??= await OpusDecoder.create({ channels: 2 });
    const decoder = this.#decoder;
    const mp3 = Mp3Encoder.create({
      sampleRate: 48_000,
      channels: 2,
      bitrateKbps: this.#options.mp3BitrateKbps ?? 128,
    });
    return {
      headers: () => Promise.resolve(),
      frames: async (entries) => {
        const out: Uint8Array[] = [];
        for (const e of entries) {
          if ("packet" in e) {
            let pcm: Int16Array;
            try {
              pcm = decoder.decode(e.packet);
            } catch {
              pcm = decoder.conceal(960); // a corrupt frame: 20 ms of concealment
            }
            out.push(mp3.encode(pcm));
          } else if ("pcm" in e) {
            out.push(mp3.encode(s16le(e.pcm)));
          }
        }
        await send(out);
      },
      close: () => mp3[Symbol.dispose](),
    };
  }

  /** Sends the headers, then entries as they come, until stopped or Icecast closes. */
  async #stream(
    encode: { headers: () => Promise<void>; frames: (entries: Entry[]) => Promise<void> },
    closed: () => boolean,
  ): Promise<void> {
    await encode.headers();
    if (this.#title) void this.#updateTitle(this.#title);
    while (!this.#options.signal.aborted && !closed()) {
      if (this.#pending.length === 0) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      const entries = this.#pending;
      this.#pending = [];
      this.#pendingFrames = 0;
      this.#dropping = false;
      for (const e of entries) {
        if ("title" in e && !this.#refused) void this.#updateTitle(e.title);
      }
      await encode.frames(entries);
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

/** s16le bytes as samples (a copy, so the station's payload is not aliased). */
function s16le(bytes: Uint8Array): Int16Array {
  const pcm = new Int16Array(bytes.length >> 1);
  new Uint8Array(pcm.buffer).set(bytes.subarray(0, pcm.length * 2));
  return pcm;
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
