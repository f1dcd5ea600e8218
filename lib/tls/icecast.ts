/**
 * Publishes the radio to an Icecast server as a source client: an HTTP PUT to the mount with
 * Basic auth and `Content-Type: audio/mpeg`, then the MP3 frames as the station plays them.
 * Written on a plain TCP socket rather than fetch, because Icecast expects a raw body after
 * its answer (fetch would send a chunked body). Songs that are not MP3 are left out of the feed
 * (Icecast relays bytes; it cannot mix codecs in one mount). A dropped connection is retried
 * with exponential backoff while the station keeps playing.
 *
 * @module
 */

import type { StationEvent } from "../media/station.ts";
import type { EventFields } from "../cli/event_log.ts";
import { UsageError } from "../cli/errors.ts";
import { SendQueue } from "./send_queue.ts";

/** A parsed `--icecast` URL. */
export interface IcecastUrl {
  hostname: string;
  port: number;
  mount: string;
  user: string;
  password: string;
}

/**
 * Parses `http://USER:PASSWORD@HOST:PORT/MOUNT` (user defaults to `source`).
 *
 * @throws {UsageError} for anything else.
 */
export function parseIcecastUrl(text: string): IcecastUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(
      `--icecast: "${text}" is not a URL (http://source:PASSWORD@HOST:PORT/MOUNT)`,
    );
  }
  if (url.protocol !== "http:") throw new UsageError("--icecast: only http:// URLs are supported");
  if (url.pathname.length < 2) {
    throw new UsageError("--icecast: the URL needs a mount, e.g. /radio.mp3");
  }
  if (!url.password) throw new UsageError("--icecast: the URL needs the source password");
  return {
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || 8000),
    mount: url.pathname,
    user: decodeURIComponent(url.username || "source"),
    password: decodeURIComponent(url.password),
  };
}

/** Options for {@linkcode IcecastSource}. */
export interface IcecastSourceOptions {
  /** Stops publishing. */
  signal: AbortSignal;
  /** Event sink (icecast_connected, icecast_error, icecast_skip…). */
  log?: (event: string, fields: EventFields) => void;
  /** Bytes buffered while Icecast is slow or reconnecting; older audio is dropped. @default {524288} */
  maxQueueBytes?: number;
  /** First reconnect delay; doubles up to 30 s. @default {1000} */
  retryMs?: number;
}

/** An Icecast source client fed by station events. */
export class IcecastSource {
  readonly #url: IcecastUrl;
  readonly #options: IcecastSourceOptions;
  #queue: SendQueue | undefined;
  #conn: Deno.Conn | undefined;
  #mp3 = false;
  /** MP3 bytes handed to Icecast. */
  bytesSent = 0;
  /** Resolves when stopped. */
  readonly closed: Promise<void>;

  /** Starts connecting at once. */
  constructor(url: IcecastUrl, options: IcecastSourceOptions) {
    this.#url = url;
    this.#options = options;
    this.closed = this.#run();
  }

  /** Where it publishes, without the password. */
  get description(): string {
    return `icecast http://${this.#url.hostname}:${this.#url.port}${this.#url.mount}`;
  }

  /** Feeds one station event (subscribe this to the station). */
  onStationEvent(event: StationEvent): void {
    if (event.type === "song") {
      this.#mp3 = event.info.codec === "mp3";
      if (!this.#mp3) {
        this.#log("icecast_skip", { title: event.info.title, codec: event.info.codec });
      }
      return;
    }
    if (!this.#mp3 || !this.#queue) return;
    // Live audio: if Icecast cannot take it now, this packet is lost, not delayed.
    if (!this.#queue.offer(event.packet.payload)) this.#log("icecast_drop", {});
    else this.bytesSent += event.packet.payload.length;
  }

  #log(event: string, fields: EventFields): void {
    this.#options.log?.(event, fields);
  }

  async #run(): Promise<void> {
    const { signal } = this.#options;
    let retry = this.#options.retryMs ?? 1000;
    const onAbort = () => {
      try {
        this.#conn?.close();
      } catch { /* closed */ }
    };
    signal.addEventListener("abort", onAbort, { once: true });
    while (!signal.aborted) {
      try {
        await this.#session();
        retry = this.#options.retryMs ?? 1000;
      } catch (error) {
        if (signal.aborted) break;
        this.#log("icecast_error", { error: (error as Error).message, retryMs: retry });
      }
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, retry);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      retry = Math.min(retry * 2, 30_000);
    }
    signal.removeEventListener("abort", onAbort);
  }

  /** One connection: handshake, then relay until it fails. */
  async #session(): Promise<void> {
    const u = this.#url;
    const conn = await Deno.connect({ hostname: u.hostname, port: u.port });
    this.#conn = conn;
    try {
      const auth = btoa(`${u.user}:${u.password}`);
      const head = [
        `PUT ${u.mount} HTTP/1.1`,
        `Host: ${u.hostname}:${u.port}`,
        `Authorization: Basic ${auth}`,
        "User-Agent: soundsock tls-server",
        "Content-Type: audio/mpeg",
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
      this.#log("icecast_connected", { mount: u.mount });
      let failed: Error | undefined;
      const done = new Promise<void>((resolve) => {
        this.#queue = new SendQueue(conn, {
          maxBytes: this.#options.maxQueueBytes ?? 512 * 1024,
          onError: (error) => {
            failed = error;
            resolve();
          },
        });
        // Icecast sends nothing more; a read that ends means it closed the connection.
        const buf = new Uint8Array(1024);
        (async () => {
          try {
            while ((await conn.read(buf)) !== null) { /* ignore */ }
          } catch { /* closed */ }
          failed ??= new Error("Icecast closed the connection");
          resolve();
        })();
      });
      await done;
      throw failed;
    } finally {
      this.#queue?.close();
      this.#queue = undefined;
      try {
        conn.close();
      } catch { /* closed */ }
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
