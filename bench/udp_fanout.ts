/**
 * Radio fan-out cost: the real udp-server (in its own process) streaming the radio to N
 * listeners on loopback, versus a bare Deno sender sending the same packet rate to the same N
 * sockets. Per N: server CPU seconds per listener-minute, µs of CPU per datagram sent, RSS
 * (total, and per listener above the server's 0-listener baseline), loss.
 *
 *   deno run -A bench/udp_fanout.ts --listeners 100,500,1000 --seconds 20
 *     [--radio-song 01-morning-arpeggio.mp3 | --radio-song all] [--listener-procs auto|K]
 *     [--settle 3] [--songs songs]
 *
 * How: `deno run -A cmd/udp_server.ts --port 0 --max-clients 100000 --heartbeat-timeout 60`
 * is spawned (its "listening on" stderr line gives the port). Listener processes (this file
 * with `--role listeners`, 1 process, 2 when N > 1000) bind N sockets; each joins with the
 * soundsock/2 handshake (REQUEST {"op":"radio"}, CHALLENGE, REQUEST with the cookie, ACCEPT with
 * the session token; lib/wire encodeControl), sends a HEARTBEAT with its token every 2 s, and
 * counts DATA packets and sequence gaps. Against the server each listener binds its own loopback
 * IP (127.1.x.y: Linux routes all of 127/8 to lo), because request budgets and admission count
 * per source IP (PROTOCOL.md §5.0); the bare run's sockets are on 127.0.0.1. Once all joined and `--settle` s passed, the parent reads the server's
 * utime+stime (/proc/PID/stat, CLK_TCK 100) and VmRSS (/proc/PID/status) at the start and end
 * of a `--seconds` window; listeners count only inside it. Then the bare run: bench/_bare_sender.ts
 * fanout sends 1200-byte datagrams at the radio's measured packet rate to N fresh sockets,
 * measured the same way.
 *
 * By default the radio loops one MP3 song (`--radio-song`), so the packet rate is steady; the
 * whole library mixes MP3 (~6–10 pkt/s) with PCM from WAV/FLAC (37–147 pkt/s), and a 20 s
 * window would measure whichever song happens to play. Listeners and server share the 2 cores.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { encodeControl } from "../lib/wire/messages.ts";
import { FrameType } from "../lib/wire/frame.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { packetizeSong } from "../lib/media/packetizer.ts";
import {
  fmt,
  Lines,
  machineBusy,
  roleArgs,
  RoleProcess,
  sampleProcess,
  serveRoleCommands,
  sleep,
  stopProcess,
} from "./_proc.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const BARE = new URL("./_bare_sender.ts", import.meta.url).pathname;
const HEARTBEAT_MS = 2000;
/** Progress on stderr (stdout is the table). */
const progress = (line: string) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));

const args = parseArgs(Deno.args, {
  string: [
    "listeners",
    "seconds",
    "radio-song",
    "listener-procs",
    "settle",
    "songs",
    "role",
    "port",
    "count",
    "first",
  ],
});

// ---------------------------------------------------------------------------------------------
// Child role: N listener sockets, driven by lines on stdin, reporting JSON lines on stdout.
// ---------------------------------------------------------------------------------------------

interface WindowReport {
  listeners: number;
  joined: number;
  received: number;
  gaps: number;
  reordered: number;
  listenersWithLoss: number;
  worstLossPct: number;
  minReceived: number;
  maxReceived: number;
}

async function listenerRole(): Promise<void> {
  const count = Number(args.count);
  const first = Number(args.first ?? 0); // index of this process's first listener (its IP)
  const port = Number(args.port ?? 0); // 0: bare mode, no server to talk to
  const say = (obj: unknown) =>
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(obj) + "\n"));
  const server = { transport: "udp" as const, hostname: "127.0.0.1", port };
  interface L {
    conn: Deno.DatagramConn;
    joined: boolean;
    last: number;
    /** First sequence number received inside the window, -1 before. */
    lo: number;
    received: number;
    gaps: number;
    reordered: number;
    cookie?: string;
    token?: string;
  }
  const ls: L[] = [];
  for (let i = 0; i < count; i++) {
    const n = first + i;
    const hostname = port === 0 ? "127.0.0.1" : `127.1.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    ls.push({ conn, joined: port === 0, last: -1, lo: -1, received: 0, gaps: 0, reordered: 0 });
  }
  const json = (d: Uint8Array) => JSON.parse(new TextDecoder().decode(d.subarray(32)));
  const request = (l: L) =>
    encodeControl(
      FrameType.REQUEST,
      l.cookie ? { op: "radio", cookie: l.cookie } : { op: "radio" },
    );
  let windowOpen = false;
  let stationId = 0;
  for (const l of ls) {
    (async () => {
      const buf = new Uint8Array(2048);
      for (;;) {
        let d: Uint8Array;
        try {
          [d] = await l.conn.receive(buf);
        } catch {
          return; // closed
        }
        if (d.length < 32 || d[0] !== 0x53 || d[1] !== 0x4b) continue;
        const type = d[3];
        if (type === FrameType.DATA) {
          const seq = ((d[12]! << 24) | (d[13]! << 16) | (d[14]! << 8) | d[15]!) >>> 0;
          if (windowOpen) {
            l.received++;
            if (l.lo < 0) l.lo = seq;
            if (l.last >= 0 && seq <= l.last) l.reordered++;
          }
          if (seq > l.last) l.last = seq;
        } else if (type === FrameType.CHALLENGE && !l.joined) {
          l.cookie = json(d).cookie;
          l.conn.send(request(l), server).catch(() => {});
        } else if (type === FrameType.ACCEPT) {
          l.joined = true;
          l.token = json(d).token;
          stationId = ((d[8]! << 24) | (d[9]! << 16) | (d[10]! << 8) | d[11]!) >>> 0;
        }
      }
    })();
  }
  const ports = ls.map((l) => (l.conn.addr as Deno.NetAddr).port);
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  if (port !== 0) {
    // Join: REQUEST {"op":"radio"} from every socket, 100 at a time, retrying the silent ones;
    // the receive loop answers each CHALLENGE with the cookie at once.
    for (let attempt = 0; attempt < 4; attempt++) {
      const waiting = ls.filter((l) => !l.joined);
      if (waiting.length === 0) break;
      for (let i = 0; i < waiting.length; i++) {
        waiting[i]!.conn.send(request(waiting[i]!), server).catch(() => {});
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 10));
      }
      const until = performance.now() + 3000;
      while (performance.now() < until && ls.some((l) => !l.joined)) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // HEARTBEAT with the listener's token every 2 s, spread over the period (1/20 of them
    // every 100 ms); each frame is encoded once.
    const hbs = ls.map((l) =>
      encodeControl(FrameType.HEARTBEAT, { token: l.token }, { streamId: stationId })
    );
    let tick = 0;
    heartbeat = setInterval(() => {
      const slot = tick++ % 20;
      for (let i = slot; i < ls.length; i += 20) ls[i]!.conn.send(hbs[i]!, server).catch(() => {});
    }, HEARTBEAT_MS / 20);
  }
  say({ event: "joined", joined: ls.filter((l) => l.joined).length, ports });

  await serveRoleCommands({
    start: () => {
      for (const l of ls) l.received = l.gaps = l.reordered = 0, l.lo = -1;
      windowOpen = true;
    },
    stop: () => {
      windowOpen = false;
      // Lost = the span of sequence numbers seen in the window minus the packets received
      // (a reordered packet fills its gap; duplicates do not occur on loopback).
      for (const l of ls) l.gaps = l.lo < 0 ? 0 : Math.max(0, l.last - l.lo + 1 - l.received);
      const loss = ls.map((l) => l.gaps / Math.max(1, l.received + l.gaps));
      const report: WindowReport = {
        listeners: ls.length,
        joined: ls.filter((l) => l.joined).length,
        received: ls.reduce((n, l) => n + l.received, 0),
        gaps: ls.reduce((n, l) => n + l.gaps, 0),
        reordered: ls.reduce((n, l) => n + l.reordered, 0),
        listenersWithLoss: ls.filter((l) => l.gaps > 0).length,
        worstLossPct: 100 * Math.max(...loss),
        minReceived: Math.min(...ls.map((l) => l.received)),
        maxReceived: Math.max(...ls.map((l) => l.received)),
      };
      say({ event: "window", ...report });
    },
    quit: async () => {
      clearInterval(heartbeat);
      if (port !== 0) {
        await Promise.all(ls.map((l) =>
          l.conn.send(
            encodeControl(FrameType.BYE, { token: l.token }, { streamId: stationId }),
            server,
          ).catch(() => {})
        ));
      }
      for (const l of ls) l.conn.close();
      Deno.exit(0);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Parent: orchestration and /proc measurements.
// ---------------------------------------------------------------------------------------------

/** System-wide UDP counters (/proc/net/snmp): datagrams dropped on a full receive buffer. */
function udpRcvbufErrors(): number {
  const lines = Deno.readTextFileSync("/proc/net/snmp").split("\n").filter((l) =>
    l.startsWith("Udp:")
  );
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf("RcvbufErrors")]);
}

interface Listeners {
  procs: RoleProcess[];
  ports: number[];
  joined: number;
}

async function startListeners(n: number, procs: number, serverPort: number): Promise<Listeners> {
  const result: Listeners = { procs: [], ports: [], joined: 0 };
  const per = Math.ceil(n / procs);
  for (let p = 0; p < procs; p++) {
    const count = Math.min(per, n - p * per);
    if (count <= 0) break;
    const proc = new RoleProcess(
      new Deno.Command("deno", {
        args: roleArgs(SELF, "listeners", { count, port: serverPort, first: p * per }),
        cwd: ROOT,
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }),
    );
    result.procs.push(proc);
  }
  for (const p of result.procs) {
    const msg = await p.expect<{ joined: number; ports: number[] }>(
      "joined",
      60_000,
      "listeners to join",
    );
    result.joined += msg.joined;
    result.ports.push(...msg.ports);
  }
  return result;
}

async function tell(ls: Listeners, cmd: string): Promise<void> {
  await Promise.all(ls.procs.map((p) => p.tell(cmd)));
}

async function windowReports(ls: Listeners): Promise<WindowReport> {
  await tell(ls, "stop");
  const parts: WindowReport[] = [];
  for (const p of ls.procs) {
    parts.push(
      await p.expect<WindowReport>("window", 30_000, "window report"),
    );
  }
  return {
    listeners: parts.reduce((n, r) => n + r.listeners, 0),
    joined: parts.reduce((n, r) => n + r.joined, 0),
    received: parts.reduce((n, r) => n + r.received, 0),
    gaps: parts.reduce((n, r) => n + r.gaps, 0),
    reordered: parts.reduce((n, r) => n + r.reordered, 0),
    listenersWithLoss: parts.reduce((n, r) => n + r.listenersWithLoss, 0),
    worstLossPct: Math.max(...parts.map((r) => r.worstLossPct)),
    minReceived: Math.min(...parts.map((r) => r.minReceived)),
    maxReceived: Math.max(...parts.map((r) => r.maxReceived)),
  };
}

async function stopListeners(ls: Listeners): Promise<void> {
  await Promise.all(ls.procs.map((p) => p.stop()));
}

interface Measured {
  n: number;
  window: WindowReport;
  seconds: number;
  cpuS: number;
  /** CPU-s per s with the station running and 0 listeners (its encode; 0 for the bare sender). */
  baseCpuRate: number;
  rssBaseKiB: number;
  rssKiB: number;
  listenerCpuPct: number;
  machineBusyPct: number;
  pktPerListenerS: number;
  /** Kernel UDP receive-buffer drops during the window, whole machine. */
  rcvbufDrops: number;
}

/** Runs the measurement window against the process `pid` with listeners `ls`. */
async function measureWindow(
  pid: number,
  ls: Listeners,
  seconds: number,
  base: { cpuRate: number; rssKiB: number },
): Promise<Measured> {
  const lsPids = ls.procs.map((p) => p.child.pid);
  await tell(ls, "start");
  const s0 = sampleProcess(pid);
  const l0 = lsPids.map(sampleProcess);
  const m0 = machineBusy();
  const d0 = udpRcvbufErrors();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const s1 = sampleProcess(pid);
  const l1 = lsPids.map(sampleProcess);
  const m1 = machineBusy();
  const d1 = udpRcvbufErrors();
  const wall = (performance.now() - t0) / 1000;
  const window = await windowReports(ls);
  const n = window.listeners;
  const listenerCpu = l1.reduce((a, s, i) => a + s.cpuS - l0[i]!.cpuS, 0);
  return {
    n,
    window,
    seconds: wall,
    cpuS: s1.cpuS - s0.cpuS,
    baseCpuRate: base.cpuRate,
    rssBaseKiB: base.rssKiB,
    rssKiB: s1.rssKiB,
    listenerCpuPct: (100 * listenerCpu) / wall,
    machineBusyPct: (100 * (m1[0]! - m0[0]!)) / (m1[1]! - m0[1]!),
    pktPerListenerS: (window.received + window.gaps) / n / wall,
    rcvbufDrops: d1 - d0,
  };
}

/** The radio song's own packet rate (packets / duration), from the packetizer. */
async function nominalRate(songsDir: string, radioSong: string | undefined): Promise<number> {
  const catalog = await SongCatalog.open(songsDir);
  const songs = radioSong ? [catalog.get(radioSong)] : catalog.songs;
  let packets = 0, us = 0;
  for (const song of songs) {
    const p = await packetizeSong(song, 1200);
    packets += p.packets.length;
    us += p.durationUs;
  }
  return packets / (us / 1e6);
}

async function runReal(
  n: number,
  procs: number,
  seconds: number,
  settle: number,
  songsDir: string,
  radioSong: string | undefined,
): Promise<Measured> {
  const serverArgs = [
    "run",
    "-A",
    "cmd/udp_server.ts",
    "--port",
    "0",
    "--max-clients",
    "100000",
    "--heartbeat-timeout",
    "60",
    "--songs",
    songsDir,
  ];
  if (radioSong) serverArgs.push("--radio-song", radioSong);
  const server = new Deno.Command("deno", {
    args: serverArgs,
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const err = new Lines(server.stderr);
  try {
    const line = await err.next((l) => l.includes("listening on"), 30_000, "udp-server to listen");
    const port = Number(/:(\d+) /.exec(line)?.[1]);
    await sleep(3000); // station running, JIT warm, start-up work done, 0 listeners
    // The station's own cost (decode, resample, Opus encode) with nobody listening, over as long
    // a window as the measured one: its work is uneven (more at a song's start), and a short
    // window taken early (start-up) overstated it ~2×, which made the net figure look better.
    const b0 = sampleProcess(server.pid);
    const t0 = performance.now();
    await sleep(Math.max(5, seconds) * 1000);
    const b1 = sampleProcess(server.pid);
    const base = {
      cpuRate: (b1.cpuS - b0.cpuS) / ((performance.now() - t0) / 1000),
      rssKiB: b1.rssKiB,
    };
    const ls = await startListeners(n, procs, port);
    try {
      if (ls.joined < n) progress(`warning: only ${ls.joined}/${n} listeners joined`);
      await sleep(settle * 1000);
      return await measureWindow(server.pid, ls, seconds, base);
    } finally {
      await stopListeners(ls);
    }
  } finally {
    await stopProcess(server, progress);
  }
}

async function runBare(
  n: number,
  procs: number,
  seconds: number,
  settle: number,
  rate: number,
  batch: boolean,
): Promise<Measured> {
  const ls = await startListeners(n, procs, 0);
  const portsFile = await Deno.makeTempFile({ prefix: "soundsock-fanout-ports-", suffix: ".json" });
  try {
    await Deno.writeTextFile(portsFile, JSON.stringify(ls.ports));
    const sender = new Deno.Command("deno", {
      args: [
        "run",
        "-A",
        BARE,
        "fanout",
        "--ports-file",
        portsFile,
        "--rate",
        String(rate),
        "--size",
        "1200",
        "--seconds",
        String(settle + seconds + 30),
        "--batch",
        batch ? "1" : "0",
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const out = new Lines(sender.stdout);
    try {
      await out.next((l) => l.includes('"ready"'), 30_000, "bare sender");
      // Its 0-listener baseline RSS is not separable (it sends to all from the start): sample
      // right after start-up instead.
      const base = { cpuRate: 0, rssKiB: sampleProcess(sender.pid).rssKiB };
      await sleep(settle * 1000);
      return await measureWindow(sender.pid, ls, seconds, base);
    } finally {
      await stopProcess(sender, progress);
    }
  } finally {
    await stopListeners(ls);
    await Deno.remove(portsFile).catch(() => {});
  }
}

async function parent(): Promise<void> {
  const ns = String(args.listeners ?? "100,500,1000").split(",").map(Number).filter((x) => x > 0);
  const seconds = Number(args.seconds ?? 20);
  const settle = Number(args.settle ?? 3);
  const songsDir = args.songs ?? `${ROOT}songs`;
  const radioSong = args["radio-song"] === "all"
    ? undefined
    : (args["radio-song"] ?? "01-morning-arpeggio.mp3");
  const procsFor = (n: number) =>
    args["listener-procs"] && args["listener-procs"] !== "auto"
      ? Number(args["listener-procs"])
      : n > 1000
      ? 2
      : 1;
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const rows: { real: Measured; bare: Measured; bareBatch: Measured }[] = [];
  const nominal = await nominalRate(songsDir, radioSong);
  for (const n of ns) {
    progress(`N=${n}: real udp-server…`);
    const real = await runReal(n, procsFor(n), seconds, settle, songsDir, radioSong);
    // The bare sender gets the rate listeners measured, unless the server fell behind (then
    // listeners see less than the song's own rate, and the bare sender gets the nominal rate).
    const rate = real.pktPerListenerS >= 0.95 * nominal ? real.pktPerListenerS : nominal;
    progress(
      `N=${n}: real ${fmt(real.cpuS, 2)} CPU-s, ${fmt(rate, 2)} pkt/s/listener; bare sender…`,
    );
    const bare = await runBare(n, procsFor(n), seconds, settle, rate, false);
    progress(`N=${n}: bare sendmmsg sender…`);
    const bareBatch = await runBare(n, procsFor(n), seconds, settle, rate, true);
    rows.push({ real, bare, bareBatch });
  }

  const perMin = (m: Measured) => m.cpuS / (m.n * m.seconds / 60);
  const usPerPkt = (m: Measured) => (m.cpuS * 1e6) / (m.window.received + m.window.gaps);
  /** Minus the station's own 0-listener rate: what the fan-out itself costs. */
  const netCpu = (m: Measured) => m.cpuS - m.baseCpuRate * m.seconds;
  const netPerMin = (m: Measured) => netCpu(m) / (m.n * m.seconds / 60);
  const netUsPerPkt = (m: Measured) => (netCpu(m) * 1e6) / (m.window.received + m.window.gaps);
  const lossPct = (m: Measured) =>
    (100 * m.window.gaps) / Math.max(1, m.window.received + m.window.gaps);
  out(
    `Reproduce: deno run -A bench/udp_fanout.ts --listeners ${ns.join(",")} --seconds ${seconds}` +
      (args["radio-song"] ? ` --radio-song ${args["radio-song"]}` : "") +
      (args["listener-procs"] ? ` --listener-procs ${args["listener-procs"]}` : ""),
  );
  out(
    `Radio: ${radioSong ?? "whole library"} (its own rate ${
      nominal.toFixed(2)
    } pkt/s); window ${seconds} s after all joined + ${settle} s; ` +
      `CPU from /proc/PID/stat (utime+stime, 10 ms ticks); net = minus udp-server's own rate ` +
      `with the station running and 0 listeners (over the window's length, before they join; the bare sender has no ` +
      `station).`,
  );
  out("");
  out(
    "| N | sender | pkt/s per listener | CPU-s / listener-min | µs CPU / datagram | " +
      "net µs CPU / datagram | % of a core (0 listeners) | " +
      "RSS MiB (0-listener base) | RSS KiB / listener | loss % | listeners with loss | " +
      "kernel rcvbuf drops | reordered | listener procs CPU % | machine busy % |",
  );
  out("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const { real, bare, bareBatch } of rows) {
    const senders = [["udp-server", real], ["bare Deno", bare], ["bare sendmmsg", bareBatch]];
    for (const [name, m] of senders as [string, Measured][]) {
      out(
        `| ${m.n} | ${name} | ${fmt(m.pktPerListenerS, 2)} | ${fmt(perMin(m), 5)} | ` +
          `${fmt(usPerPkt(m), 2)} | ${fmt(netUsPerPkt(m), 2)} | ` +
          `${fmt((100 * m.cpuS) / m.seconds, 1)} (${fmt(100 * m.baseCpuRate, 1)}) | ` +
          `${fmt(m.rssKiB / 1024, 1)} (${fmt(m.rssBaseKiB / 1024, 1)}) | ` +
          `${name === "udp-server" ? fmt((m.rssKiB - m.rssBaseKiB) / m.n, 2) : "—"} | ` +
          `${fmt(lossPct(m), 3)} | ${m.window.listenersWithLoss}/${m.n} | ` +
          `${m.rcvbufDrops} | ${m.window.reordered} | ` +
          `${fmt(m.listenerCpuPct, 0)} | ${fmt(m.machineBusyPct, 0)} |`,
      );
    }
  }
  out("");
  out(
    "| N | udp-server CPU-s/listener-min | net | bare CPU-s/listener-min | real/bare | " +
      "net real/bare | ≤ 1.2× bare (gross / net) | loss < 0.1 % | " +
      "bare sendmmsg CPU-s/listener-min | real/bare sendmmsg (gross / net) |",
  );
  out("|---:|---:|---:|---:|---:|---:|---|---|---:|---:|");
  for (const { real, bare, bareBatch } of rows) {
    const ratio = perMin(real) / perMin(bare);
    const net = netPerMin(real) / perMin(bare);
    const met = (r: number) => r <= 1.2 ? "met" : "MISSED";
    out(
      `| ${real.n} | ${fmt(perMin(real), 5)} | ${fmt(netPerMin(real), 5)} | ` +
        `${fmt(perMin(bare), 5)} | ${fmt(ratio, 2)}× | ${fmt(net, 2)}× | ` +
        `${met(ratio)} / ${met(net)} | ${lossPct(real) < 0.1 ? "met" : "MISSED"} | ` +
        `${fmt(perMin(bareBatch), 5)} | ${fmt(perMin(real) / perMin(bareBatch), 2)}× / ` +
        `${fmt(netPerMin(real) / perMin(bareBatch), 2)}× |`,
    );
  }
}

if (import.meta.main) {
  if (args.role === "listeners") await listenerRole();
  else await parent();
}
