/**
 * What one server-side TLS write costs on tls-server's route (node:net native socket +
 * node:tls `TLSSocket`, lib/tls/tcp_listener.ts), by how it is written, and what a connection
 * costs in memory. The fan-out benchmarks (bench/tls_fanout.ts, bench/web_stream.ts) measure
 * the whole server; this isolates the write.
 *
 *   deno run -A bench/tls_write_cost.ts [--method queue] [--connections 1000] [--size 1000]
 *     [--interval-ms 100] [--seconds 8]
 *
 * Methods (one write of `--size` bytes to every connection every `--interval-ms`):
 *
 * - `queue`: lib/tls/send_queue.ts over lib/tls/socket_stream.ts (an awaited promise per write,
 *   the TLS radio's path before `ServerTlsConn.tryWrite`);
 * - `write`: `socket.write(bytes)` with no callback (node's stream machinery only);
 * - `handle`: the native handle's `writeBuffer` with a no-op completion, no node stream at all
 *   (a floor for any JS-side change; not a safe way to write);
 * - `shared` / `copy` / `reuse`: one `socket.write` per connection of one shared buffer, of a
 *   fresh copy per connection, or of a buffer each connection keeps and refills (what
 *   /stream's per-listener Ogg batches can do);
 * - `idle`: no writes (memory of a connection); `plain`: node:net sockets without TLS, idle.
 *
 * N verified `Deno.connectTls` clients (a child process) read and discard. Printed: the
 * server's CPU (utime+stime of this process over the window, /proc/self/stat) as % of a core and
 * µs per write; RSS above the 0-connection baseline per connection, idle (after the handshakes)
 * and at the end of streaming; V8 heap and external memory (Deno.memoryUsage).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import net from "node:net";
import tls from "node:tls";
import { createCertificates } from "../lib/tls/certs.ts";
import { SendQueue } from "../lib/tls/send_queue.ts";
import { TlsSocketStream } from "../lib/tls/socket_stream.ts";
import { sampleProcess, sleep } from "./_proc.ts";

const args = parseArgs(Deno.args, {
  string: ["role", "port", "ca", "connections", "method", "size", "interval-ms", "seconds"],
  boolean: ["plain"],
});
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

if (args.role === "clients") {
  const ca = await Deno.readTextFile(args.ca!);
  const port = Number(args.port);
  for (let i = 0; i < Number(args.connections); i++) {
    const c: Deno.Conn = args.plain
      ? await Deno.connect({ hostname: "127.0.0.1", port })
      : await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
    if (!args.plain) await (c as Deno.TlsConn).handshake();
    void (async () => {
      const b = new Uint8Array(65536);
      try {
        while ((await c.read(b)) !== null) { /* discard */ }
      } catch { /* closed */ }
    })();
  }
  out("connected");
  await new Promise(() => {});
}

const method = args.method ?? "queue";
const n = Number(args.connections ?? 1000);
const size = Number(args.size ?? 1000);
const intervalMs = Number(args["interval-ms"] ?? 100);
const seconds = Number(args.seconds ?? 8);
const methods = ["queue", "write", "handle", "shared", "copy", "reuse", "idle", "plain"];
if (!methods.includes(method)) throw new Error(`--method is one of ${methods.join(", ")}`);

const self = Deno.pid;
const dir = await Deno.makeTempDir({ prefix: "soundsock-write-cost-" });
const certs = await createCertificates(dir);
const secureContext = tls.createSecureContext({
  cert: await Deno.readTextFile(certs.serverCert),
  key: await Deno.readTextFile(certs.serverKey),
});
const sockets: net.Socket[] = [];
const base = sampleProcess(self).rssKiB;
const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (tcp) => {
  tcp.on("error", () => {});
  if (method === "plain") return void sockets.push(tcp);
  const socket = new tls.TLSSocket(tcp, {
    isServer: true,
    secureContext,
    minVersion: "TLSv1.2",
  } as tls.TLSSocketOptions);
  socket.on("error", () => {});
  socket.once("secure", () => sockets.push(socket));
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = (server.address() as net.AddressInfo).port;
const clients = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    "--role",
    "clients",
    "--connections",
    String(n),
    "--port",
    String(port),
    "--ca",
    certs.caCert,
    ...(method === "plain" ? ["--plain"] : []),
  ],
  stdout: "piped",
}).spawn();
await clients.stdout.getReader().read();
await sleep(1500);
const idle = sampleProcess(self).rssKiB;

const payload = new Uint8Array(size).fill(7);
const queues = method === "queue"
  ? sockets.map((s) =>
    new SendQueue(new TlsSocketStream(s as tls.TLSSocket, { readLimit: 16384 }), {
      maxBytes: 1 << 20,
    })
  )
  : [];
const own = sockets.map(() => new Uint8Array(size));
const noop = () => {};
interface Handle {
  writeBuffer(req: { oncomplete: () => void }, data: Uint8Array): number;
}
let ticks = 0;
const tick = () => {
  ticks++;
  switch (method) {
    case "queue":
      for (const q of queues) q.offer(payload);
      break;
    case "write":
    case "shared":
      for (const s of sockets) s.write(payload);
      break;
    case "handle":
      for (const s of sockets) {
        (s as unknown as { _handle: Handle })._handle.writeBuffer({ oncomplete: noop }, payload);
      }
      break;
    case "copy":
      for (const s of sockets) s.write(payload.slice());
      break;
    case "reuse":
      sockets.forEach((s, i) => {
        own[i]!.set(payload);
        s.write(own[i]!);
      });
      break;
  }
};
const timer = setInterval(tick, intervalMs);
await sleep(2000); // warm up
const c0 = sampleProcess(self).cpuS, t0 = performance.now(), k0 = ticks;
await sleep(seconds * 1000);
const c1 = sampleProcess(self).cpuS, wall = (performance.now() - t0) / 1000, k1 = ticks;
clearInterval(timer);
const mem = Deno.memoryUsage();
const writes = (k1 - k0) * (method === "idle" || method === "plain" ? 0 : sockets.length);
out(JSON.stringify({
  method,
  connections: sockets.length,
  size,
  intervalMs,
  cpuPct: Number((100 * (c1 - c0) / wall).toFixed(1)),
  usPerWrite: writes > 0 ? Number((1e6 * (c1 - c0) / writes).toFixed(1)) : null,
  idleKiBPerConn: Number(((idle - base) / sockets.length).toFixed(1)),
  streamingKiBPerConn: Number(((sampleProcess(self).rssKiB - base) / sockets.length).toFixed(1)),
  heapTotalMiB: Number((mem.heapTotal / 2 ** 20).toFixed(1)),
  heapUsedMiB: Number((mem.heapUsed / 2 ** 20).toFixed(1)),
  externalMiB: Number((mem.external / 2 ** 20).toFixed(1)),
}));
clients.kill("SIGKILL");
await clients.status;
await Deno.remove(dir, { recursive: true }).catch(() => {});
Deno.exit(0);
