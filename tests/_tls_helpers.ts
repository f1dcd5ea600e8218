/**
 * Shared setup for the TLS tests: certificates and song folders in temp dirs, an in-process
 * tls-server on port 0 with an event hook, and raw-frame helpers for hostile clients.
 *
 * @module
 */

import { join } from "@std/path";
import { wavHeader } from "../lib/audio/wav.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { createCertificates, type CreateCertificatesResult } from "../lib/tls/certs.ts";
import { TlsSongServer, type TlsSongServerOptions } from "../lib/tls/server.ts";
import { TlsSongClient } from "../lib/tls/client.ts";
import { loadNativeTls } from "../lib/tls/native/ffi.ts";
import type { EventFields } from "../lib/cli/event_log.ts";

let certsOnce: Promise<CreateCertificatesResult> | undefined;

/** `--songs SONGS --cert … --key …` with `certs`: the flags every test tls-server gets. */
export function tlsServerFlags(songs: string, certs: CreateCertificatesResult): string[] {
  return ["--songs", songs, "--cert", certs.serverCert, "--key", certs.serverKey];
}

/** One CA + server certificate for the whole test process (openssl takes ~50 ms). */
export function testCerts(): Promise<CreateCertificatesResult> {
  certsOnce ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "soundsock-certs-" });
    return await createCertificates(dir);
  })();
  return certsOnce;
}

/** A WAV file of `seconds` of noise (noise so that every file's bytes differ). */
export function makeWav(seconds: number, sampleRate = 8000, channels = 1, seed = 1): Uint8Array {
  const frames = Math.round(seconds * sampleRate);
  const data = new Uint8Array(frames * channels * 2);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    data[i] = x >>> 24;
  }
  const header = wavHeader(sampleRate, channels, data.length);
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}

/** A songs folder with the given WAV songs: name → [seconds, sampleRate, channels]. */
export async function makeSongs(
  songs: Record<string, [seconds: number, sampleRate?: number, channels?: number]>,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-songs-" });
  let seed = 1;
  for (const [name, [seconds, rate, ch]] of Object.entries(songs)) {
    await Deno.writeFile(join(dir, name), makeWav(seconds, rate, ch, seed++));
  }
  return dir;
}

/** An event the server logged. */
export interface LoggedEvent {
  event: string;
  fields: EventFields;
}

/** A running test server with a way to await its log events. */
export interface TestServer extends AsyncDisposable {
  server: TlsSongServer;
  port: number;
  caCert: string;
  certs: CreateCertificatesResult;
  events: LoggedEvent[];
  /** Resolves with the first (past or future) event matching `pred`. */
  waitFor(pred: (e: LoggedEvent) => boolean, timeoutMs?: number): Promise<LoggedEvent>;
  /** A connected, verified client. */
  connect(): Promise<TlsSongClient>;
}

/** Starts a server on 127.0.0.1:0 (or `hostname`) over `songsDir`. */
export async function startTestServer(
  songsDir: string,
  options: Partial<TlsSongServerOptions> = {},
): Promise<TestServer> {
  const certs = await testCerts();
  const catalog = await SongCatalog.open(songsDir);
  const events: LoggedEvent[] = [];
  const waiters = new Set<
    { pred: (e: LoggedEvent) => boolean; resolve: (e: LoggedEvent) => void }
  >();
  const server = TlsSongServer.start({
    catalog,
    cert: await Deno.readTextFile(certs.serverCert),
    key: await Deno.readTextFile(certs.serverKey),
    nativeTls: await loadNativeTls(),
    hostname: "127.0.0.1",
    port: 0,
    ...options,
    onEvent: (event, fields) => {
      const e = { event, fields };
      events.push(e);
      for (const w of waiters) {
        if (w.pred(e)) {
          waiters.delete(w);
          w.resolve(e);
        }
      }
    },
  });
  const caCert = await Deno.readTextFile(certs.caCert);
  const port = server.addr.port;
  return {
    server,
    port,
    caCert,
    certs,
    events,
    waitFor(pred, timeoutMs = 10_000) {
      const past = events.find(pred);
      if (past) return Promise.resolve(past);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (e: LoggedEvent) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error("timed out waiting for a server event"));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    connect: () =>
      TlsSongClient.connect({ hostname: "localhost", port }, {
        caCerts: [caCert],
        timeoutMs: 10_000,
      }),
    async [Symbol.asyncDispose]() {
      await server.close();
    },
  };
}

/** Reads from `conn` until EOF or error; resolves with the bytes read (bounded). */
export async function readUntilClosed(
  conn: Deno.Conn,
  limit = 16 * 1024 * 1024,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      total += n;
      if (total > limit) throw new Error("peer sent too much");
    }
  } catch (error) {
    if (
      !(error instanceof Deno.errors.ConnectionReset) && !(error instanceof Deno.errors.BadResource)
    ) {
      if (!/reset|closed|eof/i.test((error as Error).message)) throw error;
    }
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A tls-server running as its own process (so its descriptors and memory are its own). */
export interface TlsServerProcess {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  /** Open file descriptors of the server process. */
  fds(): number;
}

/**
 * Starts `cmd/tls_server.ts` on 127.0.0.1:0 over `songs` with the test certificates and
 * `extraArgs`, optionally under `prlimit` (e.g. `["--nofile=96"]`); resolves once its
 * `--ready-json` line is out. Its stdout is drained afterwards; stderr goes to `stderr`.
 */
export async function spawnTlsServer(
  songs: string,
  extraArgs: string[] = [],
  options: { prlimit?: string[]; stderr?: "null" | "inherit" } = {},
): Promise<TlsServerProcess> {
  const certs = await testCerts();
  const argv = [
    ...(options.prlimit ? ["prlimit", ...options.prlimit] : []),
    Deno.execPath(),
    "run",
    "-A",
    new URL("../cmd/tls_server.ts", import.meta.url).pathname,
    "--port",
    "0",
    ...tlsServerFlags(songs, certs),
    "--ready-json",
    ...extraArgs,
  ];
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: options.stderr ?? "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("tls-server exited before it was ready");
    text += value;
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const port = JSON.parse(text.split("\n")[0]!).port as number;
  const pid = child.pid;
  return { child, pid, port, fds: () => [...Deno.readDirSync(`/proc/${pid}/fd`)].length };
}
