/**
 * Shared setup for the web tests: a tls-server (in process, port 0) with the web front end on
 * its own port 0, its events recorded, and a headless Chromium (Debian's, never downloaded)
 * driven by playwright-core.
 *
 * @module
 */

import { chromium } from "playwright-core";
import type { Browser } from "playwright-core";
import { startTestServer, type TestServer } from "./_tls_helpers.ts";
import { WebServer, type WebServerOptions } from "../lib/web/server.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { loadNativeTls } from "../lib/tls/native/ffi.ts";
import type { TlsSongServerOptions } from "../lib/tls/server.ts";

/** A tls-server with `--web`. */
export interface WebTestServer extends AsyncDisposable {
  tls: TestServer;
  web: WebServer;
  /** `https://localhost:PORT` of the web front end. */
  origin: string;
  /** Web events logged, in order. */
  events: { event: string; fields: Record<string, unknown> }[];
  /** Resolves with the first (past or future) web event matching `pred`. */
  waitFor(
    pred: (e: { event: string; fields: Record<string, unknown> }) => boolean,
    timeoutMs?: number,
  ): Promise<{ event: string; fields: Record<string, unknown> }>;
  /** An HTTP client trusting the test CA. */
  client: Deno.HttpClient;
}

/** Starts tls-server over `songsDir` and the web front end next to it. */
export async function startWebServer(
  songsDir: string,
  options: Partial<WebServerOptions> = {},
  tlsOptions: Partial<TlsSongServerOptions> = {},
  { shared = false }: { shared?: boolean } = {},
): Promise<WebTestServer> {
  // Shared: HTTPS on the soundsock port (tls-server --web without --web-port).
  const ref: { web?: WebServer } = {};
  const tls = await startTestServer(songsDir, {
    ...tlsOptions,
    ...(shared ? { onHttp: (conn) => ref.web ? ref.web.handle(conn) : conn.close() } : {}),
  });
  const events: { event: string; fields: Record<string, unknown> }[] = [];
  const waiters = new Set<{ pred: (e: (typeof events)[number]) => boolean; resolve: () => void }>();
  const stop = new AbortController();
  const web = ref.web = WebServer.start({
    station: tls.server.station,
    program: tls.server.program,
    catalog: await SongCatalog.open(songsDir),
    tlsListeners: () => tls.server.listeners,
    cert: await Deno.readTextFile(tls.certs.serverCert),
    key: await Deno.readTextFile(tls.certs.serverKey),
    nativeTls: await loadNativeTls(),
    ...(shared ? { shared: tls.server.addr } : { port: 0 }),
    signal: stop.signal,
    ...options,
    log: (event, fields) => {
      const e = { event, fields };
      events.push(e);
      for (const w of waiters) if (w.pred(e)) w.resolve();
    },
  });
  const client = Deno.createHttpClient({ caCerts: [tls.caCert] });
  return {
    tls,
    web,
    origin: `https://localhost:${web.addr.port}`,
    events,
    client,
    waitFor(pred, timeoutMs = 20_000) {
      const past = events.find(pred);
      if (past) return Promise.resolve(past);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: () => {
            clearTimeout(timer);
            waiters.delete(w);
            resolve(events.find(pred)!);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error("timed out waiting for a web event"));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    async [Symbol.asyncDispose]() {
      client.close();
      stop.abort();
      await web.finished;
      await tls[Symbol.asyncDispose]();
    },
  };
}

/** Debian's Chromium, headless, with the flags of issue #14 (nothing is downloaded). */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  Deno.env.set("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      ...extraArgs,
    ],
    timeout: 60_000,
  });
}
