/**
 * `tls-server --web`: the radio in a browser, over HTTPS with the server's own certificate.
 *
 * | Path           | Method | Answer                                                        |
 * |----------------|--------|---------------------------------------------------------------|
 * | `/`            | GET    | the listener page (lib/web/page.ts)                           |
 * | `/events`      | GET    | Server-Sent Events, one {@linkcode WebStatus} per second and  |
 * |                |        | on each change                                                |
 * | `/status.json` | GET    | the {@linkcode WebStatus} now                                 |
 * | `/stream`      | GET    | the station as Ogg/Opus (`audio/ogg`, Icecast-style headers)  |
 * | `/request`     | POST   | `{"song": NAME}` → `{"result","message","status"}`            |
 *
 * HTTP is read by lib/web/http.ts (one request per connection, bounded head and body, request
 * timeout) over the TLS connections of lib/tls/acceptor.ts (handshake timeout, handshakes per
 * IP): why not `Deno.serve` / `node:https` is said there. Limits here: connections in total and
 * per IP (503 past them), a request budget per IP for song requests (429), a byte-capped queue
 * per `/stream` listener (a slower reader is dropped) and one pending event per SSE client.
 * Song names are looked up in the catalog (RadioProgram → SongCatalog.find); nothing else.
 *
 * @module
 */

import type { Station } from "../media/station.ts";
import type { RadioProgram } from "../station/radio_program.ts";
import type { SongCatalog } from "../songs/catalog.ts";
import { type AcceptStats, acceptTls } from "../tls/acceptor.ts";
import { ListenError } from "../net/listen_error.ts";
import type { TcpListener } from "../tls/tcp_listener.ts";
import { listenForTls, serverTls } from "../tls/engine.ts";
import type { NativeTlsLoad } from "../tls/native/ffi.ts";
import { sourceKey } from "../net/source_key.ts";
import { HttpError } from "./errors.ts";
import {
  type HttpConn,
  type HttpRequest,
  readRequest,
  type RequestLimits,
  responseHead,
  writeResponse,
} from "./http.ts";
import { OggFeed } from "./ogg_feed.ts";
import { PAGE_HTML } from "./page.ts";
import { RequestBudget, type RequestBudgetOptions } from "./request_budget.ts";
import { SseClient } from "./sse.ts";
import { type WebStatus, webStatus } from "./status.ts";

/** Options of {@linkcode WebServer.start}. */
export interface WebServerOptions {
  /** The radio. */
  station: Station;
  /** Its request queue. */
  program: RadioProgram;
  /** The songs. */
  catalog: SongCatalog;
  /** TLS radio listeners now (for the listener count). @default {() => 0} */
  tlsListeners?: () => number;
  /** Certificate chain (PEM). */
  cert: string;
  /** Private key (PEM). */
  key: string;
  /** OpenSSL for TLS (lib/tls/engine.ts); node:tls without it. @default {undefined} */
  nativeTls?: NativeTlsLoad;
  /** Listen address. @default {"127.0.0.1"} */
  hostname?: string;
  /** Listen port (0: any free one). @default {8444} */
  port?: number;
  /**
   * No listener of its own: the soundsock server at this address hands HTTP connections over
   * ({@linkcode WebServer.handle}; TlsSongServerOptions.onHttp), one port for both.
   */
  shared?: Deno.NetAddr;
  /** Stops the server. */
  signal: AbortSignal;
  /** Connections at once (past it: 503). @default {1024} */
  maxConnections?: number;
  /** Connections at once from one IP address (past it: 503; 0: no limit). @default {64} */
  maxConnectionsPerIp?: number;
  /** Request head/body limits and timeout. */
  limits?: RequestLimits;
  /** Song request budget per IP. */
  budget?: RequestBudgetOptions;
  /** Bytes queued per `/stream` listener before it is dropped. @default {262144} */
  streamQueueBytes?: number;
  /** Time for the TLS handshake. @default {5000} */
  handshakeTimeoutMs?: number;
  /** SSE period in ms. @default {1000} */
  eventPeriodMs?: number;
  /** Event sink (web_listening, web_refused, web_stream_end, web_request…). */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

/** Counters. */
export interface WebServerStats extends AcceptStats {
  /** Requests answered (any status). */
  requests: number;
  /** Requests refused with a 4xx/5xx. */
  refused: number;
  /** Connections open now. */
  open: number;
  /** `/stream` listeners dropped for reading too slowly. */
  slowDropped: number;
}

/** A running web front end; see the module doc. */
export class WebServer implements AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Counters. */
  readonly stats: WebServerStats = {
    accepted: 0,
    handshakeFailures: 0,
    dropped: 0,
    acceptErrors: 0,
    requests: 0,
    refused: 0,
    open: 0,
    slowDropped: 0,
  };
  /** Resolves once stopped and every connection is closed. */
  readonly finished: Promise<void>;
  readonly #options: WebServerOptions;
  readonly #feed: OggFeed;
  readonly #budget: RequestBudget;
  readonly #sse = new Set<SseClient>();
  readonly #conns = new Set<HttpConn>();
  readonly #perIp = new Map<string, number>();
  readonly #stop = new AbortController();
  readonly #log: (event: string, fields: Record<string, unknown>) => void;

  private constructor(options: WebServerOptions) {
    this.#options = options;
    this.#log = options.log ?? (() => {});
    const signal = AbortSignal.any([options.signal, this.#stop.signal]);
    const tlsSetup = serverTls(options.cert, options.key, options.nativeTls);
    const hostname = options.hostname ?? "127.0.0.1";
    const port = options.port ?? 8444;
    let listener: TcpListener | undefined;
    if (options.shared) {
      this.addr = options.shared;
    } else {
      try {
        listener = listenForTls(tlsSetup, { hostname, port });
      } catch (cause) {
        throw new ListenError(`listen on ${hostname}:${port} (--web-port)`, cause);
      }
      this.addr = listener.addr;
    }
    const feed = this.#feed = new OggFeed(options.station, {
      maxBytes: options.streamQueueBytes,
    });
    this.#budget = new RequestBudget(options.budget);
    const tick = setInterval(() => this.publish(), options.eventPeriodMs ?? 1000);
    this.#log("web_listening", { hostname: this.addr.hostname, port: this.addr.port });
    const accepting = !listener
      ? new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      })
      : acceptTls(listener, {
        secureContext: tlsSetup.secureContext,
        nativeContext: tlsSetup.nativeContext,
        signal,
        handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
        maxPendingPerIp: 64,
        maxPending: 256,
        log: this.#log,
        onConnection: (conn) => void this.#serve(conn),
      }, this.stats);
    this.finished = (async () => {
      await accepting;
      clearInterval(tick);
      feed.close();
      for (const c of this.#sse) c.close();
      for (const c of this.#conns) c.close();
    })();
  }

  /**
   * Listens; the returned server is ready.
   * @throws {ListenError} the address cannot be taken
   */
  static start(options: WebServerOptions): WebServer {
    return new WebServer(options);
  }

  /** Serves one HTTPS connection handed over by a shared-port server. */
  handle(conn: HttpConn): void {
    if (this.#stop.signal.aborted || this.#options.signal.aborted) return conn.close();
    this.stats.accepted++;
    void this.#serve(conn);
  }

  /** `/stream` listeners now. */
  get streamListeners(): number {
    return this.#feed.listenerCount;
  }

  /** Bytes sent to and queued for each `/stream` listener now. */
  streamQueues(): { sent: number; queued: number }[] {
    return this.#feed.queues();
  }

  /** The status document now. */
  status(): WebStatus {
    return webStatus({
      station: this.#options.station,
      program: this.#options.program,
      catalog: this.#options.catalog,
      tlsListeners: this.#options.tlsListeners ?? (() => 0),
      webListeners: () => this.#feed.listenerCount,
    });
  }

  /** Sends the status to every SSE client now (also done every eventPeriodMs). */
  publish(): void {
    if (this.#sse.size === 0) return;
    const json = JSON.stringify(this.status());
    for (const c of this.#sse) c.send(json);
  }

  /** Stops; resolves when everything is closed. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.finished;
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #serve(conn: HttpConn): Promise<void> {
    const ip = sourceKey(conn.remoteAddr.hostname);
    const fromIp = (this.#perIp.get(ip) ?? 0) + 1;
    this.#perIp.set(ip, fromIp);
    this.#conns.add(conn);
    this.stats.open++;
    try {
      if (this.#conns.size > (this.#options.maxConnections ?? 1024)) {
        throw new HttpError(503, "The server is full; try again later");
      }
      const perIp = this.#options.maxConnectionsPerIp ?? 64;
      if (perIp > 0 && fromIp > perIp) {
        throw new HttpError(503, "Too many connections from your address");
      }
      const req = await readRequest(conn, this.#options.limits);
      this.stats.requests++;
      await this.#route(conn, req);
    } catch (error) {
      if (error instanceof HttpError) {
        this.stats.refused++;
        this.#log("web_refused", {
          remote: conn.remoteAddr.hostname,
          status: error.status,
          reason: error.message,
        });
        await writeResponse(conn, error.status, "application/json", jsonError(error)).catch(
          () => {},
        );
      } else {
        this.#log("web_error", {
          remote: conn.remoteAddr.hostname,
          error: (error as Error).message,
        });
      }
    } finally {
      conn.close();
      this.#conns.delete(conn);
      this.stats.open--;
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.#perIp.set(ip, left);
      else this.#perIp.delete(ip);
    }
  }

  async #route(conn: HttpConn, req: HttpRequest): Promise<void> {
    const { method, path } = req;
    const get = method === "GET" || method === "HEAD";
    const need = (ok: boolean, allow: string) => {
      if (!ok) throw new HttpError(405, `${path} allows ${allow} only`);
    };
    switch (path) {
      case "/":
      case "/index.html":
        need(get, "GET");
        return await writeResponse(conn, 200, "text/html; charset=utf-8", PAGE_HTML, {
          "Cache-Control": "no-cache",
          "Content-Security-Policy":
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
            "media-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        });
      case "/status.json":
        need(get, "GET");
        return await writeResponse(conn, 200, "application/json", JSON.stringify(this.status()), {
          "Cache-Control": "no-cache",
        });
      case "/events":
        need(get, "GET");
        return await this.#events(conn);
      case "/stream":
        need(get, "GET");
        return await this.#stream(conn);
      case "/request":
        need(method === "POST", "POST");
        // JSON only: a cross-site form cannot send it without a CORS preflight we never allow.
        if (!/^application\/json\s*(;|$)/i.test(req.headers.get("content-type") ?? "")) {
          throw new HttpError(415, "POST /request takes application/json");
        }
        return await this.#request(conn, req.body);
      default:
        throw new HttpError(404, `No such page: ${path.slice(0, 100)}`);
    }
  }

  async #events(conn: HttpConn): Promise<void> {
    await conn.write(responseHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
    }));
    const client = new SseClient(conn);
    this.#sse.add(client);
    client.send(JSON.stringify(this.status()));
    await client.finished;
    this.#sse.delete(client);
  }

  async #stream(conn: HttpConn): Promise<void> {
    this.#feed.check();
    await conn.write(responseHead(200, {
      "Content-Type": "audio/ogg",
      "Cache-Control": "no-cache, no-store",
      "icy-name": "soundsock radio",
      "icy-description": "soundsock request radio (Ogg/Opus)",
      "icy-pub": "0",
    }));
    const started = performance.now();
    const q = this.#feed.add(conn);
    this.#log("web_stream_start", { remote: conn.remoteAddr.hostname });
    this.publish();
    const end = await q.finished;
    if (end === "too_slow") this.stats.slowDropped++;
    this.#log("web_stream_end", {
      remote: conn.remoteAddr.hostname,
      reason: end,
      bytes: q.bytesSent,
      ms: Math.round(performance.now() - started),
    });
    this.publish();
  }

  async #request(conn: HttpConn, body: Uint8Array): Promise<void> {
    let song: unknown;
    try {
      song = (JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body)) as {
        song?: unknown;
      })?.song;
    } catch {
      throw new HttpError(400, 'The body must be JSON: {"song": NAME}');
    }
    if (typeof song !== "string" || song.length === 0 || song.length > 1024) {
      throw new HttpError(400, 'The body must be JSON: {"song": NAME} (1..1024 characters)');
    }
    const wait = this.#budget.take(conn.remoteAddr.hostname);
    if (wait > 0) {
      this.stats.refused++;
      const seconds = Math.ceil(wait / 1000);
      return await writeResponse(
        conn,
        429,
        "application/json",
        JSON.stringify({
          result: "budget",
          message: `Too many requests from your address; try again in ${seconds} s`,
        }),
        { "Retry-After": String(seconds) },
      );
    }
    const answer = this.#options.program.request(song);
    this.#log("web_request", {
      remote: conn.remoteAddr.hostname,
      song: answer.song?.title ?? song.slice(0, 100),
      result: answer.result,
    });
    const status = this.status();
    await writeResponse(
      conn,
      200,
      "application/json",
      JSON.stringify({ result: answer.result, message: answer.message, status }),
    );
    this.publish();
  }
}

function jsonError(error: HttpError): string {
  return JSON.stringify({ error: error.message, status: error.status });
}
