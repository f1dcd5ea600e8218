/**
 * Hostile peers against a real tls-server process (issue #8): what a slowloris flood and a
 * crowd of stalled readers cost the server, measured from outside through /proc. A report,
 * not a test (no assertions): JSON summary on stdout, then a short table.
 *
 *   deno run -A bench/tls_hostile.ts [--sockets 300] [--flood-ips 2] [--clients 50]
 *     [--song-mib 50] [--queues 1024,256] [--only slowloris|readers]
 *
 * 1. Slowloris. `cmd/tls_server.ts --handshake-timeout 2 --log …`. `--sockets` TCP sockets
 *    (node:net `localAddress`) that never finish the TLS handshake: half send nothing (from
 *    127.0.0.2), half send the first 7 bytes of a TLS record and stall inside the ClientHello
 *    (from 127.0.0.3); with `--flood-ips K` > 2 they are spread round-robin over
 *    127.0.0.2 … 127.0.0.(K+1). The server's descriptor count (/proc/PID/fd) at baseline, its
 *    peak (sampled every 20 ms from the moment the flood starts) and at handshake-timeout +
 *    2 s after the flood opened. A legit client (TlsSongClient, from 127.0.0.1: connect + TLS
 *    handshake + `list`) is timed 10 times with no flood and 10 times right after the flood is
 *    open; median/max and the ratio of medians. The server's log counts `drop_connection`
 *    (pending-handshake cap: 64 per IP, 256 in total, oldest evicted) and `handshake_failed`
 *    (timeouts; evicted sockets are not counted twice).
 *
 * 2. Slow readers. Per `--queues` value Q (KiB): a fresh server with `--send-queue Q
 *    --max-clients 1000 --max-per-ip 0 --idle-timeout 120` over one ~`--song-mib` MiB WAV.
 *    The song's SHA-256 is awaited first (a download at offset = size). VmRSS
 *    (/proc/PID/status) at baseline; after `--clients` raw TLS connections (Deno.connectTls,
 *    handshake done) sit idle 1 s; then each sends REQUEST {"op":"get","song":…}
 *    (lib/wire encodeControl) and never reads: VmRSS after 3 s and 6 s. Growth per stalled
 *    client = (RSS at 3 s − RSS idle) / N, next to the documented cap Q + one 64 KiB TLS write.
 *    Separately, the kernel's queues from /proc/net/tcp: tx_queue of the server's sockets
 *    (local port = server port) and rx_queue of the clients' sockets — bytes already out of
 *    the process, bounded by net.ipv4.tcp_wmem / tcp_rmem, not by --send-queue.
 *    RSS counts garbage too (ciphertext and frames already sent, and memory the allocator
 *    keeps after freeing), so each Q also runs an in-process probe (this file as a child with
 *    `--v8-flags=--expose-gc --role gc-probe`): the same N stalled gets against an in-process
 *    TlsSongServer (tests/_tls_helpers.ts startTestServer), V8 heapUsed + external read
 *    after two forced GCs (idle → stalled), i.e. the bytes still live per stalled client.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { delay } from "@std/async/delay";
import { dirname, join } from "@std/path";
import net from "node:net";
import { TlsSongClient } from "../lib/tls/client.ts";
import { encodeControl } from "../lib/wire/messages.ts";
import { FrameType } from "../lib/wire/frame.ts";
import {
  makeSongs,
  spawnTlsServer,
  startTestServer,
  testCerts,
  type TlsServerProcess,
} from "../tests/_tls_helpers.ts";
import { median, sampleProcess, stopProcess } from "./_proc.ts";

const args = parseArgs(Deno.args, {
  string: [
    "sockets",
    "flood-ips",
    "clients",
    "song-mib",
    "queues",
    "only",
    "role",
    "songs",
    "queue",
  ],
  default: {
    sockets: "300",
    "flood-ips": "2",
    clients: "50",
    "song-mib": "50",
    queues: "1024,256",
  },
});
const SOCKETS = Number(args.sockets);
const FLOOD_IPS = Number(args["flood-ips"]);
const CLIENTS = Number(args.clients);
const SONG_MIB = Number(args["song-mib"]);
const QUEUES = String(args.queues).split(",").map(Number);
const ONLY = args.only as string | undefined;
const HANDSHAKE_TIMEOUT_S = 2;
const TLS_WRITE_KIB = 64;

function say(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text + "\n"));
}
function print(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
}

interface Server extends TlsServerProcess {
  rssKiB(): number;
}

const certs = await testCerts();
const caCert = await Deno.readTextFile(certs.caCert);

async function spawnServer(songs: string, extra: string[]): Promise<Server> {
  const server = await spawnTlsServer(songs, ["-q", ...extra], { stderr: "inherit" });
  return { ...server, rssKiB: () => sampleProcess(server.pid).rssKiB };
}

function connectClient(port: number): Promise<TlsSongClient> {
  return TlsSongClient.connect({ hostname: "localhost", port }, {
    caCerts: [caCert],
    timeoutMs: 30_000,
  });
}

/** connect + handshake + list, in ms. */
async function timedList(port: number): Promise<number> {
  const t0 = performance.now();
  using c = await connectClient(port);
  await c.list();
  return performance.now() - t0;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Opens `n` TCP sockets, socket i from `ips[i % ips.length]`, sending `prefix(i)` if any. */
async function floodSockets(
  port: number,
  n: number,
  ips: string[],
  prefix: (i: number) => Uint8Array | undefined,
): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new Promise<void>((resolve) => {
        const s = net.connect(
          { host: "127.0.0.1", port, localAddress: ips[i % ips.length] },
          () => {
            const p = prefix(i);
            if (p) s.write(p);
            resolve();
          },
        );
        s.on("error", () => resolve());
        s.on("data", () => {});
        sockets.push(s);
      })),
  );
  return sockets;
}

async function logEvents(path: string): Promise<Record<string, number>> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const counts: Record<string, number> = {};
  for (const line of text.split("\n").filter(Boolean)) {
    // Flood events are logged sparingly with a running `count` (lib/cli/log_throttle.ts).
    const { event, count } = JSON.parse(line) as { event: string; count?: number };
    counts[event] = Math.max((counts[event] ?? 0) + 1, count ?? 0);
  }
  return counts;
}

async function slowloris(): Promise<Record<string, unknown>> {
  const songs = await makeSongs({ "a.wav": [1], "b.wav": [1] });
  const log = join(await Deno.makeTempDir({ prefix: "soundsock-hostile-" }), "server.log");
  const server = await spawnServer(songs, [
    "--handshake-timeout",
    String(HANDSHAKE_TIMEOUT_S),
    "--log",
    log,
  ]);
  try {
    await timedList(server.port); // warm-up (first handshake, JIT)
    const quiet: number[] = [];
    for (let i = 0; i < 10; i++) quiet.push(await timedList(server.port));
    await delay(500);
    const baseline = server.fds();
    // Silent sockets and partial-ClientHello sockets alternate, so each IP set gets both
    // kinds when spread; with 2 IPs: even i (silent) from .2, odd i (partial) from .3.
    const ips = Array.from({ length: Math.max(2, FLOOD_IPS) }, (_, k) => `127.0.0.${k + 2}`);
    const partial = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]);
    let peak = baseline;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, server.fds());
      } catch { /* racing a closing fd */ }
    }, 20);
    const floodStart = performance.now();
    const flood = await floodSockets(
      server.port,
      SOCKETS,
      ips,
      (i) => i % 2 ? partial : undefined,
    );
    const openMs = performance.now() - floodStart;
    const fdsOpen = server.fds();
    const during: number[] = [];
    for (let i = 0; i < 10; i++) during.push(await timedList(server.port));
    const duringEndMs = performance.now() - floodStart;
    const waitMs = HANDSHAKE_TIMEOUT_S * 1000 + 2000 - (performance.now() - floodStart);
    if (waitMs > 0) await delay(waitMs);
    clearInterval(sampler);
    const after = server.fds();
    const closedByServer = flood.filter((s) => s.readableEnded || s.destroyed).length;
    for (const s of flood) s.destroy();
    await delay(200);
    const events = await logEvents(log);
    return {
      sockets: SOCKETS,
      floodIps: ips.length,
      handshakeTimeoutS: HANDSHAKE_TIMEOUT_S,
      floodOpenMs: round(openMs),
      fds: { baseline, justAfterOpen: fdsOpen, peak, afterTimeoutPlus2s: after },
      floodSocketsClosedByServer: closedByServer,
      serverLog: {
        drop_connection: events["drop_connection"] ?? 0,
        handshake_failed: events["handshake_failed"] ?? 0,
      },
      legitConnectListMs: {
        noFlood: { median: round(median(quiet)), max: round(Math.max(...quiet)) },
        flood: {
          median: round(median(during)),
          max: round(Math.max(...during)),
          lastEndedMsAfterFloodStart: round(duringEndMs),
        },
        ratioOfMedians: round(median(during) / median(quiet), 2),
      },
    };
  } finally {
    await stopProcess(server.child, say);
    await Deno.remove(songs, { recursive: true }).catch(() => {});
    await Deno.remove(dirname(log), { recursive: true }).catch(() => {});
  }
}

interface TcpQueues {
  /** Server-side sockets (local port = server port), tx_queue in bytes. */
  serverTx: number[];
  /** Client-side sockets (remote port = server port), rx_queue in bytes. */
  clientRx: number[];
}

function tcpQueues(port: number): TcpQueues {
  const out: TcpQueues = { serverTx: [], clientRx: [] };
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 5 || f[3] !== "01") continue; // ESTABLISHED only
      const localPort = parseInt(f[1]!.split(":")[1]!, 16);
      const remotePort = parseInt(f[2]!.split(":")[1]!, 16);
      const [tx, rx] = f[4]!.split(":").map((h) => parseInt(h, 16)) as [number, number];
      if (localPort === port) out.serverTx.push(tx);
      else if (remotePort === port) out.clientRx.push(rx);
    }
  }
  return out;
}

function queueStats(xs: number[]) {
  const kib = xs.map((x) => x / 1024);
  return {
    sockets: xs.length,
    medianKiB: xs.length ? round(median(kib)) : 0,
    maxKiB: xs.length ? round(Math.max(...kib)) : 0,
    totalMiB: round(kib.reduce((a, b) => a + b, 0) / 1024),
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

async function slowReaders(songs: string, song: string, queueKiB: number) {
  const server = await spawnServer(songs, [
    "--send-queue",
    String(queueKiB),
    "--max-clients",
    "1000",
    "--max-per-ip",
    "0",
    "--idle-timeout",
    "120",
  ]);
  const conns: Deno.TlsConn[] = [];
  try {
    const size = (await Deno.stat(join(songs, song))).size;
    {
      // Wait for the server's hash of the song (computed in the background at start).
      using c = await connectClient(server.port);
      await c.download(song, { offset: size });
    }
    await delay(1000);
    const baseline = server.rssKiB();
    for (let i = 0; i < CLIENTS; i++) {
      const conn = await Deno.connectTls({
        hostname: "localhost",
        port: server.port,
        caCerts: [caCert],
      });
      await conn.handshake();
      conns.push(conn);
    }
    await delay(1000);
    const idle = server.rssKiB();
    const request = encodeControl(FrameType.REQUEST, { op: "get", song });
    await Promise.all(conns.map((c) => writeAll(c, request)));
    await delay(3000);
    const stalled3 = server.rssKiB();
    const queues = tcpQueues(server.port);
    await delay(3000);
    const stalled6 = server.rssKiB();
    const capKiB = queueKiB + TLS_WRITE_KIB;
    const perClient = (stalled3 - idle) / CLIENTS;
    return {
      sendQueueKiB: queueKiB,
      clients: CLIENTS,
      songMiB: round(size / 1024 / 1024),
      rssKiB: { baseline, idle: idle, stalled3s: stalled3, stalled6s: stalled6 },
      idleKiBPerClient: round((idle - baseline) / CLIENTS),
      stalledKiBPerClient: round(perClient),
      stalledKiBPerClient6s: round((stalled6 - idle) / CLIENTS),
      capKiBPerClient: capKiB,
      ratioToCap: round(perClient / capKiB, 2),
      kernel: {
        serverTxQueue: queueStats(queues.serverTx),
        clientRxQueue: queueStats(queues.clientRx),
      },
    };
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await stopProcess(server.child, say);
  }
}

/**
 * In-process probe (run as a child with --v8-flags=--expose-gc): the same stalled gets
 * against an in-process TlsSongServer, with V8 heap + external (ArrayBuffer) memory read
 * after two forced GCs, i.e. the bytes still live, not garbage the allocator keeps.
 */
async function gcProbe(songs: string, song: string, queueKiB: number): Promise<void> {
  const gc = (globalThis as unknown as { gc: () => void }).gc;
  const live = () => {
    gc();
    gc();
    const m = Deno.memoryUsage();
    return { rssKiB: m.rss >> 10, liveKiB: (m.heapUsed + m.external) >> 10 };
  };
  await using t = await startTestServer(songs, {
    sendQueueBytes: queueKiB * 1024,
    maxClients: 1000,
    maxClientsPerIp: 0,
    idleTimeoutMs: 120_000,
  });
  const size = (await Deno.stat(join(songs, song))).size;
  {
    using c = await t.connect();
    await c.download(song, { offset: size });
  }
  await delay(500);
  const conns: Deno.TlsConn[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const c = await Deno.connectTls({ hostname: "localhost", port: t.port, caCerts: [t.caCert] });
    await c.handshake();
    conns.push(c);
  }
  await delay(500);
  const idle = live();
  const request = encodeControl(FrameType.REQUEST, { op: "get", song });
  await Promise.all(conns.map((c) => writeAll(c, request)));
  await delay(3000);
  const m = Deno.memoryUsage();
  const beforeGcKiB = (m.heapUsed + m.external) >> 10;
  const stalled = live();
  for (const c of conns) c.close();
  print(JSON.stringify({
    liveKiBPerClient: round((stalled.liveKiB - idle.liveKiB) / CLIENTS),
    heapPlusExternalBeforeGcKiBPerClient: round((beforeGcKiB - idle.liveKiB) / CLIENTS),
    rssKiBPerClientAfterGc: round((stalled.rssKiB - idle.rssKiB) / CLIENTS),
  }));
}

async function runGcProbe(songs: string, song: string, queueKiB: number) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      "--role",
      "gc-probe",
      "--songs",
      songs,
      "--song",
      song,
      "--queue",
      String(queueKiB),
      "--clients",
      String(CLIENTS),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as Record<string, number>;
  } catch {
    return { error: `gc probe failed (exit ${out.code})` };
  }
}

if (args.role === "gc-probe") {
  await gcProbe(String(args.songs), String(args.song), Number(args.queue));
  await Deno.remove(dirname(certs.caCert), { recursive: true }).catch(() => {});
  Deno.exit(0);
}

const wmem = Deno.readTextFileSync("/proc/sys/net/ipv4/tcp_wmem").trim().split(/\s+/);
const rmem = Deno.readTextFileSync("/proc/sys/net/ipv4/tcp_rmem").trim().split(/\s+/);
const summary: Record<string, unknown> = {
  machine: {
    cores: navigator.hardwareConcurrency,
    loadavg: Deno.loadavg(),
    deno: Deno.version.deno,
    tcp_wmem: wmem.map(Number),
    tcp_rmem: rmem.map(Number),
  },
};

if (ONLY !== "readers") {
  say(`slowloris: ${SOCKETS} sockets, handshake timeout ${HANDSHAKE_TIMEOUT_S} s…`);
  summary.slowloris = await slowloris();
}
if (ONLY !== "slowloris") {
  // ~SONG_MIB MiB of 48 kHz stereo noise, plus a small song.
  const seconds = SONG_MIB * 1024 * 1024 / 192_000;
  say(`slow readers: writing a ${SONG_MIB} MiB WAV…`);
  const songs = await makeSongs({ "big.wav": [seconds, 48000, 2], "small.wav": [1] });
  const runs = [];
  for (const q of QUEUES) {
    say(`slow readers: ${CLIENTS} stalled gets, --send-queue ${q}…`);
    const run = await slowReaders(songs, "big.wav", q);
    say(`slow readers: in-process GC probe, --send-queue ${q}…`);
    runs.push({ ...run, inProcessAfterGc: await runGcProbe(songs, "big.wav", q) });
  }
  summary.slowReaders = runs;
  await Deno.remove(songs, { recursive: true });
  summary.machine = { ...summary.machine as object, loadavgEnd: Deno.loadavg() };
}

await Deno.remove(dirname(certs.caCert), { recursive: true }).catch(() => {});
print(JSON.stringify(summary, null, 2));

// Short table.
const rows: string[][] = [["what", "result"]];
const sl = summary.slowloris as Awaited<ReturnType<typeof slowloris>> | undefined;
if (sl) {
  const fds = sl.fds as Record<string, number>;
  const ms = sl.legitConnectListMs as {
    noFlood: { median: number; max: number };
    flood: { median: number; max: number };
    ratioOfMedians: number;
  };
  const logc = sl.serverLog as Record<string, number>;
  rows.push([
    `slowloris ${SOCKETS} sockets / ${sl.floodIps} IPs: FDs`,
    `baseline ${fds.baseline}, peak ${fds.peak}, after ${HANDSHAKE_TIMEOUT_S}+2 s ${fds.afterTimeoutPlus2s}` +
    ` (evicted ${logc.drop_connection}, handshake_failed ${logc.handshake_failed})`,
  ]);
  rows.push([
    "legit connect+list (10×)",
    `no flood median ${ms.noFlood.median} / max ${ms.noFlood.max} ms; flood ${ms.flood.median} / ` +
    `${ms.flood.max} ms; ratio ${ms.ratioOfMedians}×`,
  ]);
}
type ReaderRun = Awaited<ReturnType<typeof slowReaders>> & {
  inProcessAfterGc: Record<string, number>;
};
for (const r of (summary.slowReaders ?? []) as ReaderRun[]) {
  rows.push([
    `${r.clients} stalled gets, --send-queue ${r.sendQueueKiB}`,
    `RSS +${r.stalledKiBPerClient} KiB/client (6 s: ${r.stalledKiBPerClient6s}) vs cap ` +
    `${r.capKiBPerClient} (${r.ratioToCap}×); idle conn ${r.idleKiBPerClient} KiB; kernel tx ` +
    `median ${r.kernel.serverTxQueue.medianKiB} KiB/socket, client rx ${r.kernel.clientRxQueue.medianKiB} KiB`,
  ]);
  rows.push([
    `  same, in-process after forced GC`,
    `live heap+external +${r.inProcessAfterGc.liveKiBPerClient} KiB/client vs cap ` +
    `${r.capKiBPerClient} (before GC ${r.inProcessAfterGc.heapPlusExternalBeforeGcKiBPerClient})`,
  ]);
}
const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) print(r.map((c, i) => c.padEnd(w[i]!)).join(" | "));
