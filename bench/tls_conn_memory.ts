/**
 * Memory per TLS connection, server side, for the ways a Deno server can terminate TLS:
 *
 * - `deno`: `Deno.listenTls` (what tls-server used before issue #8: cheap, but a socket that
 *   never finishes its handshake cannot be closed);
 * - `native`: lib/tls/tcp_listener.ts + lib/tls/acceptor.ts, what tls-server uses now: a
 *   node:net listener, node:tls `TLSSocket` over each native socket (`ServerTlsConn.
 *   acceptSocket`; the record layer runs natively), our accept limits and handshake timeout,
 *   the accept loop re-armed after EMFILE;
 * - `wrap`: `Deno.listen` + node:tls `TLSSocket` over a JS duplex of the `Deno.TcpConn`
 *   (`ServerTlsConn.accept`; tls-server until 2026-12-02, still the route for a `Deno.listen`
 *   listener or a host name): every socket can be closed at any time too;
 * - `node`: node:tls `createServer` (its own accept loop, which stops for good after an accept
 *   error such as EMFILE — still so in Deno 2.9.6).
 *
 *   deno run -A bench/tls_conn_memory.ts [--mode deno|native|wrap|node] [--connections 1000]
 *     [--packet-bytes 16384] [--interval-ms 300]
 *
 * N verified clients (a child process) connect and keep reading; the server's RSS above its
 * baseline is reported per connection idle (handshake done) and streaming (at least 3 s of
 * one `--packet-bytes` write to every connection every `--interval-ms`, like radio packets:
 * 16 KiB every ~1.6 s is today's MP3 radio, ~2 KiB every 100 ms an Opus station's).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import tls from "node:tls";
import { createCertificates } from "../lib/tls/certs.ts";
import { acceptTls } from "../lib/tls/acceptor.ts";
import { ServerTlsConn } from "../lib/tls/server_conn.ts";
import { NativeTcpListener } from "../lib/tls/tcp_listener.ts";

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const args = parseArgs(Deno.args, {
  string: ["mode", "connections", "role", "port", "ca", "packet-bytes", "interval-ms"],
});
const packetBytes = Number(args["packet-bytes"] ?? 16384);
const intervalMs = Number(args["interval-ms"] ?? 300);
const rounds = Math.max(10, Math.round(3000 / intervalMs));

if (args.role === "clients") {
  const ca = await Deno.readTextFile(args.ca!);
  const conns: Deno.TlsConn[] = [];
  for (let i = 0; i < Number(args.connections); i++) {
    const c = await Deno.connectTls({
      hostname: "localhost",
      port: Number(args.port),
      caCerts: [ca],
    });
    await c.handshake();
    conns.push(c);
  }
  const buf = new Uint8Array(65536);
  for (const c of conns) {
    void (async () => {
      try {
        while ((await c.read(buf)) !== null) { /* discard */ }
      } catch { /* closed */ }
    })();
  }
  out("connected");
  await new Promise(() => {});
}

const rssKiB = () => Number(Deno.readTextFileSync("/proc/self/status").match(/VmRSS:\s+(\d+)/)![1]);
/** utime + stime of this process in seconds (/proc/self/stat, 10 ms ticks). */
const cpuS = () => {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

async function measure(mode: string, n: number) {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-mem-" });
  const certs = await createCertificates(dir);
  const cert = await Deno.readTextFile(certs.serverCert);
  const key = await Deno.readTextFile(certs.serverKey);
  const writers: ((p: Uint8Array) => void)[] = [];
  const drain = (read: (b: Uint8Array) => Promise<number | null>) => {
    const b = new Uint8Array(2048);
    void (async () => {
      try {
        while ((await read(b)) !== null) { /* discard */ }
      } catch { /* closed */ }
    })();
  };
  let port: number;
  let stop: () => void;
  if (mode === "deno") {
    const l = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
    port = l.addr.port;
    stop = () => l.close();
    void (async () => {
      for await (const conn of l) {
        await conn.handshake();
        drain((b) => conn.read(b));
        writers.push((p) => void conn.write(p).catch(() => {}));
      }
    })().catch(() => {});
  } else if (mode === "wrap") {
    const secureContext = tls.createSecureContext({ cert, key });
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = l.addr.port;
    stop = () => l.close();
    void (async () => {
      for await (const tcp of l) {
        void ServerTlsConn.accept(tcp, { secureContext, handshakeTimeoutMs: 10_000 }).then((c) => {
          drain((b) => c.read(b));
          writers.push((p) => void c.write(p).catch(() => {}));
        });
      }
    })().catch(() => {});
  } else if (mode === "native") {
    const secureContext = tls.createSecureContext({ cert, key });
    const l = NativeTcpListener.tryListen("127.0.0.1", 0)!;
    port = l.addr.port;
    const stopping = new AbortController();
    stop = () => stopping.abort();
    void acceptTls(l, {
      secureContext,
      signal: stopping.signal,
      handshakeTimeoutMs: 10_000,
      maxPendingPerIp: 100_000,
      maxPending: 100_000,
      log: () => {},
      onConnection: (c) => {
        drain((b) => c.read(b));
        writers.push((p) => void c.write(p).catch(() => {}));
      },
    }, { accepted: 0, handshakeFailures: 0, dropped: 0, acceptErrors: 0 });
  } else {
    const server = tls.createServer({ cert, key }, (s) => {
      s.on("error", () => {});
      s.on("data", () => {});
      writers.push((p) => s.write(p));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
    stop = () => server.close();
  }
  await new Promise((r) => setTimeout(r, 500));
  const base = rssKiB();
  const clients = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--role",
      "clients",
      "--port",
      String(port),
      "--connections",
      String(n),
      "--ca",
      certs.caCert,
    ],
    stdout: "piped",
  }).spawn();
  await clients.stdout.getReader().read();
  await new Promise((r) => setTimeout(r, 1000));
  const idle = rssKiB();
  const packet = new Uint8Array(packetBytes);
  const cpu0 = cpuS();
  const t0 = performance.now();
  for (let round = 0; round < rounds; round++) {
    for (const w of writers) w(packet);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const streaming = rssKiB();
  const cpu = cpuS() - cpu0;
  const wallS = (performance.now() - t0) / 1000;
  clients.kill();
  await clients.status;
  stop();
  return {
    mode,
    connections: writers.length,
    idleKiB: +((idle - base) / n).toFixed(1),
    streamingKiB: +((streaming - base) / n).toFixed(1),
    // Server CPU while streaming, µs per packet written (includes the writers' loop).
    cpuUsPerWrite: +((cpu * 1e6) / (writers.length * rounds)).toFixed(1),
    cpuPct: +((100 * cpu) / wallS).toFixed(1),
  };
}

const n = Number(args.connections ?? 1000);
const modes = args.mode ? [args.mode] : ["deno", "native", "wrap", "node"];
out(
  "| mode | connections | KiB/connection idle | KiB/connection streaming | " +
    "CPU µs/write streaming | CPU % of a core streaming |",
);
out("|---|---:|---:|---:|---:|---:|");
for (const mode of modes) {
  // One fresh process per mode, so one mode's garbage does not count against the next.
  if (modes.length > 1) {
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--mode",
        mode,
        "--connections",
        String(n),
        "--packet-bytes",
        String(packetBytes),
        "--interval-ms",
        String(intervalMs),
      ],
      stdout: "piped",
    }).output();
    const line = new TextDecoder().decode(child.stdout).trim().split("\n").at(-1);
    out(line ?? "");
  } else {
    const r = await measure(mode, n);
    out(
      `| ${r.mode} | ${r.connections} | ${r.idleKiB} | ${r.streamingKiB} | ` +
        `${r.cpuUsPerWrite} | ${r.cpuPct} |`,
    );
  }
}
Deno.exit(0);
