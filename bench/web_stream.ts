/**
 * `/stream` fan-out (issue #14): tls-server's web front end serving the radio as Ogg/Opus over
 * HTTPS to N listeners, side by side with Debian's icecast2 serving the very same Ogg/Opus
 * stream (tls-server publishes it there with `--icecast`, lib/icecast) to the same N over
 * HTTPS, in one run. Per N and server: CPU seconds per listener-minute and RSS per listener
 * above each process's own 0-listener baseline, and the ratio soundsock / icecast2.
 *
 *   deno run -A bench/web_stream.ts --listeners 100,1000 --seconds 20 [--settle 3]
 *     [--server-v8-flags --max-semi-space-size=1]
 *
 * `--server-v8-flags` is passed to tls-server as `deno run --v8-flags=…`; the default is what
 * `deno task tls-server` runs with (a 1 MiB young generation), `""` for V8's default.
 *
 * How. One temp dir with certificates (lib/tls/certs.ts; icecast gets cert+key in one PEM) and
 * one song folder (`--song`, default songs/01-morning-arpeggio.mp3, looped by the radio).
 * Per N, fresh processes:
 *
 * 1. icecast2 (2.4.4 syntax) with a plain socket (source, status) and an `<ssl>1</ssl>` socket
 *    for listeners; as root it drops to nobody (`<changeowner>`).
 * 2. `cmd/tls_server.ts --port 0 --web --web-port 0 --ready-json --max-clients 100000
 *    --max-per-ip 0 --icecast http://source:…@127.0.0.1:PLAIN/radio.opus`: one Opus station
 *    (128 kbit/s, 20 ms frames), muxed into Ogg once for `/stream` and once for icecast2.
 * 3. Once icecast2 lists the mount: a 0-listener baseline window (`--seconds`) of both
 *    processes (CPU rate and RSS) — tls-server's includes the station's decoding, resampling
 *    and Opus encoding and its Icecast source client, icecast2's its source reading.
 * 4. N listeners (a child process: this file with `--role listeners`; `Deno.connectTls` with
 *    the test CA, 32 handshakes at a time, `GET /stream` or `GET /radio.opus HTTP/1.0`, first
 *    bytes must be `HTTP/1.x 200`, then read and count bytes) on tls-server's web port; after
 *    `--settle` s a `--seconds` window: utime+stime (/proc/PID/stat) and VmRSS of tls-server
 *    (the mean of samples every 250 ms; the baseline RSS likewise).
 *    Listeners stop; then the same N on icecast2's TLS port, the same window on icecast2.
 *
 * Net CPU per listener-minute = (window CPU − baseline CPU rate × window) / (N × minutes);
 * net RSS per listener = (RSS − baseline RSS) / N. The listener process and both servers share
 * the machine's 2 cores (with other engineers' work): compare within one run.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { basename, join } from "@std/path";
import { createCertificates } from "../lib/tls/certs.ts";
import {
  fmt,
  freePort,
  Lines,
  machineBusy,
  roleArgs,
  RoleProcess,
  RssSampler,
  sampleProcess,
  serveRoleCommands,
  sleep,
  stopProcess,
  withNoFile,
} from "./_proc.ts";
import { closeAndExit, type StreamWindow, streamWindow } from "./_stream_listeners.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const SOURCE_PASSWORD = "bench-source-pw";
const MOUNT = "/radio.opus";
const enc = new TextEncoder();
const progress = (line: string) => Deno.stderr.writeSync(enc.encode(line + "\n"));

const args = parseArgs(Deno.args, {
  string: [
    "listeners",
    "seconds",
    "settle",
    "song",
    "role",
    "port",
    "count",
    "ca",
    "path",
    "server-v8-flags",
  ],
});

// ---------------------------------------------------------------------------------------------
// Child role: N HTTPS listeners, driven by lines on stdin, reporting JSON lines on stdout.
// ---------------------------------------------------------------------------------------------

type WindowReport = StreamWindow;

async function listenerRole(): Promise<void> {
  const count = Number(args.count);
  const port = Number(args.port);
  const path = args.path!;
  const ca = await Deno.readTextFile(args.ca!);
  const say = (obj: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(obj) + "\n"));
  const hello = enc.encode(
    `GET ${path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: web_stream\r\n\r\n`,
  );
  interface L {
    conn?: Deno.TlsConn;
    joined: boolean;
    failed: string;
    ended: string;
    windowBytes: number;
  }
  const ls: L[] = Array.from(
    { length: count },
    () => ({ joined: false, failed: "", ended: "", windowBytes: 0 }),
  );
  let windowOpen = false;
  const run = async (l: L): Promise<void> => {
    let conn: Deno.TlsConn;
    try {
      conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
      await conn.handshake();
      await conn.write(hello);
    } catch (error) {
      l.failed = `connect: ${(error as Error).message}`;
      return;
    }
    l.conn = conn;
    const buf = new Uint8Array(16 * 1024);
    let first = true;
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch (error) {
        if (l.joined) l.ended = `read: ${(error as Error).message}`;
        else l.failed = `read: ${(error as Error).message}`;
        return;
      }
      if (n === null) {
        if (l.joined) l.ended = "eof";
        else l.failed = "eof before any data";
        return;
      }
      if (first) {
        first = false;
        const head = new TextDecoder().decode(buf.subarray(0, Math.min(n, 64)));
        if (!/^HTTP\/1\.[01] 200/.test(head)) {
          l.failed = `HTTP: ${head.split("\r\n")[0]}`;
          conn.close();
          return;
        }
        l.joined = true;
      }
      if (windowOpen) l.windowBytes += n;
    }
  };
  let next = 0;
  const workers: Promise<void>[] = [];
  for (let w = 0; w < 32; w++) {
    workers.push((async () => {
      while (next < ls.length) {
        const l = ls[next++]!;
        const t = run(l);
        while (!l.joined && !l.failed) await Promise.race([t, sleep(5)]);
      }
    })());
  }
  await Promise.all(workers);
  say({
    event: "joined",
    joined: ls.filter((l) => l.joined).length,
    failed: ls.filter((l) => l.failed).length,
    failureSample: ls.find((l) => l.failed)?.failed ?? "",
  });
  let t0 = 0;
  await serveRoleCommands({
    start: () => {
      for (const l of ls) l.windowBytes = 0;
      windowOpen = true;
      t0 = performance.now();
    },
    stop: () => {
      windowOpen = false;
      const report: WindowReport = streamWindow(ls, (performance.now() - t0) / 1000).report;
      say({ event: "window", ...report });
    },
    quit: () => closeAndExit(ls),
  });
}

// ---------------------------------------------------------------------------------------------
// Parent.
// ---------------------------------------------------------------------------------------------

interface Listeners {
  proc: RoleProcess;
  joined: number;
  failureSample: string;
}

async function startListeners(
  n: number,
  port: number,
  path: string,
  ca: string,
): Promise<Listeners> {
  const proc = new RoleProcess(withNoFile(
    Deno.execPath(),
    roleArgs(SELF, "listeners", { count: n, port, path, ca }),
    { cwd: ROOT, stdin: "piped", stdout: "piped", stderr: "inherit" },
  ));
  const msg = await proc.expect<Omit<Listeners, "proc">>("joined", 180_000, "listeners");
  return { proc, joined: msg.joined, failureSample: msg.failureSample };
}

interface Measured {
  server: "soundsock" | "icecast2";
  n: number;
  seconds: number;
  cpuS: number;
  baseCpuRate: number;
  rssBaseKiB: number;
  /** Mean RSS over the window (sampled every 250 ms); its largest and last sample. */
  rssKiB: number;
  rssMaxKiB: number;
  rssEndKiB: number;
  window: WindowReport;
  machineBusyPct: number;
}

async function window(
  server: Measured["server"],
  pid: number,
  ls: Listeners,
  n: number,
  seconds: number,
  base: { cpuRate: number; rssKiB: number },
): Promise<Measured> {
  await ls.proc.tell("start");
  const s0 = sampleProcess(pid);
  const m0 = machineBusy();
  const rss = new RssSampler(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const r = rss.stop();
  const s1 = sampleProcess(pid);
  const m1 = machineBusy();
  const wall = (performance.now() - t0) / 1000;
  await ls.proc.tell("stop");
  const w = JSON.parse(await ls.proc.out.next((l) => l.includes('"window"'), 30_000, "window"));
  return {
    server,
    n,
    seconds: wall,
    cpuS: s1.cpuS - s0.cpuS,
    baseCpuRate: base.cpuRate,
    rssBaseKiB: base.rssKiB,
    rssKiB: r.meanKiB,
    rssMaxKiB: r.maxKiB,
    rssEndKiB: s1.rssKiB,
    window: w,
    machineBusyPct: (100 * (m1[0] - m0[0])) / (m1[1] - m0[1]),
  };
}

async function baseline(pids: number[], seconds: number) {
  const a = pids.map(sampleProcess);
  const rss = pids.map((pid) => new RssSampler(pid));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const wall = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => {
    const b = sampleProcess(pid);
    return { cpuRate: (b.cpuS - a[i]!.cpuS) / wall, rssKiB: rss[i]!.stop().meanKiB };
  });
}

async function icecastMount(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/status-json.xsl`);
    const j = await r.json();
    const src = j.icestats?.source;
    return Boolean(src && JSON.stringify(src).includes(MOUNT));
  } catch {
    return false;
  }
}

interface Setup {
  tmp: string;
  songsDir: string;
  ca: string;
  cert: string;
  key: string;
  icecastPem: string;
}

async function runN(setup: Setup, n: number, seconds: number, settle: number) {
  const dir = await Deno.makeTempDir({ dir: setup.tmp, prefix: "icecast-" });
  await Deno.chmod(dir, 0o755);
  await Deno.mkdir(join(dir, "log"));
  await Deno.chmod(join(dir, "log"), 0o777);
  const plain = freePort();
  const tlsPort = freePort();
  const root = Deno.uid() === 0;
  await Deno.writeTextFile(
    join(dir, "icecast.xml"),
    `<icecast>
  <location>bench</location><admin>bench@localhost</admin>
  <limits><clients>${n + 100}</clients><sources>2</sources><queue-size>524288</queue-size></limits>
  <authentication><source-password>${SOURCE_PASSWORD}</source-password>
    <admin-user>admin</admin-user><admin-password>bench-admin-pw</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>${plain}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <listen-socket><port>${tlsPort}</port><bind-address>127.0.0.1</bind-address><ssl>1</ssl></listen-socket>
  <paths><basedir>/usr/share/icecast2</basedir><logdir>${dir}/log</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
    <ssl-certificate>${setup.icecastPem}</ssl-certificate></paths>
  <logging><errorlog>error.log</errorlog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>${
      root ? "<changeowner><user>nobody</user><group>nogroup</group></changeowner>" : ""
    }</security>
</icecast>`,
  );
  const icecast = withNoFile("icecast2", ["-c", join(dir, "icecast.xml")], {
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let server: Deno.ChildProcess | undefined;
  try {
    for (let i = 0;; i++) {
      try {
        await (await fetch(`http://127.0.0.1:${plain}/status-json.xsl`)).body?.cancel();
        break;
      } catch {
        if (i > 200) throw new Error("icecast2 did not start");
        await sleep(50);
      }
    }
    // By default as `deno task tls-server` runs it (deno.json): a 1 MiB young generation.
    const v8Flags = args["server-v8-flags"] ?? "--max-semi-space-size=1";
    server = withNoFile(Deno.execPath(), [
      "run",
      "-A",
      ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
      "cmd/tls_server.ts",
      "--port",
      "0",
      "--web",
      "--web-port",
      "0",
      "--ready-json",
      "--cert",
      setup.cert,
      "--key",
      setup.key,
      "--songs",
      setup.songsDir,
      "--max-per-ip",
      "0",
      "--max-clients",
      "100000",
      "--icecast",
      `http://source:${SOURCE_PASSWORD}@127.0.0.1:${plain}${MOUNT}`,
    ], { cwd: ROOT, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    const errLines: string[] = [];
    new Lines(server.stderr, (l) => errLines.push(l));
    const out = new Lines(server.stdout);
    let webPort: number;
    try {
      webPort = JSON.parse(await out.next((l) => l.includes('"ready"'), 60_000, "ready")).webPort;
    } catch (error) {
      throw new Error(`tls-server did not start: ${errLines.slice(-5).join(" | ")}`, {
        cause: error,
      });
    }
    for (let i = 0; !(await icecastMount(plain)); i++) {
      if (i > 300) throw new Error(`the ${MOUNT} mount did not appear`);
      await sleep(50);
    }
    await sleep(5000); // start-up work (song hashes, JIT) done
    const [baseS, baseI] = await baseline([server.pid, icecast.pid], seconds);
    const measure = async (
      name: Measured["server"],
      pid: number,
      port: number,
      path: string,
      base: { cpuRate: number; rssKiB: number },
    ) => {
      const ls = await startListeners(n, port, path, setup.ca);
      try {
        if (ls.joined < n) {
          progress(`warning: ${name} ${ls.joined}/${n} joined (${ls.failureSample})`);
        }
        await sleep(settle * 1000);
        return await window(name, pid, ls, n, seconds, base);
      } finally {
        await ls.proc.stop();
      }
    };
    const soundsock = await measure("soundsock", server.pid, webPort, "/stream", baseS!);
    await sleep(settle * 1000);
    const ice = await measure("icecast2", icecast.pid, tlsPort, MOUNT, baseI!);
    return { soundsock, icecast: ice };
  } finally {
    await stopProcess(server, progress);
    await stopProcess(icecast, progress);
  }
}

async function parent(): Promise<void> {
  const ns = String(args.listeners ?? "100,1000").split(",").map(Number).filter((x) => x > 0);
  const seconds = Number(args.seconds ?? 20);
  const settle = Number(args.settle ?? 3);
  const song = args.song ?? join(ROOT, "songs", "01-morning-arpeggio.mp3");
  const out = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));
  const tmp = await Deno.makeTempDir({ prefix: "soundsock-web-stream-" });
  await Deno.chmod(tmp, 0o755);
  const results: { n: number; soundsock?: Measured; icecast?: Measured; error?: string }[] = [];
  try {
    const certs = await createCertificates(join(tmp, "certs"));
    await Deno.chmod(join(tmp, "certs"), 0o755);
    const icecastPem = join(tmp, "icecast.pem");
    await Deno.writeTextFile(
      icecastPem,
      (await Deno.readTextFile(certs.serverCert)) + (await Deno.readTextFile(certs.serverKey)),
    );
    await Deno.chmod(icecastPem, 0o644); // a throwaway key; icecast reads it as nobody
    const songsDir = join(tmp, "songs");
    await Deno.mkdir(songsDir);
    await Deno.copyFile(song, join(songsDir, basename(song)));
    const setup: Setup = {
      tmp,
      songsDir,
      ca: certs.caCert,
      cert: certs.serverCert,
      key: certs.serverKey,
      icecastPem,
    };
    for (const n of ns) {
      progress(`N=${n}…`);
      try {
        results.push({ n, ...await runN(setup, n, seconds, settle) });
      } catch (error) {
        results.push({ n, error: (error as Error).message });
        progress(`N=${n}: failed: ${(error as Error).message}`);
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  const netPerMin = (m?: Measured) =>
    m ? (m.cpuS - m.baseCpuRate * m.seconds) / (m.n * m.seconds / 60) : NaN;
  const grossPerMin = (m?: Measured) => m ? m.cpuS / (m.n * m.seconds / 60) : NaN;
  const rssPer = (m?: Measured) => m ? (m.rssKiB - m.rssBaseKiB) / m.n : NaN;
  const rate = (m?: Measured) =>
    m ? `${fmt(m.window.minBps, 0)} / ${fmt(m.window.medianBps, 0)}` : "—";
  const fails = (m?: Measured) => m ? String(m.window.joinFailed + m.window.dropped) : "—";
  out(
    `Reproduce: deno run -A bench/web_stream.ts --listeners ${ns.join(",")} --seconds ${seconds}` +
      (args.settle ? ` --settle ${settle}` : "") +
      (args["server-v8-flags"] !== undefined
        ? ` --server-v8-flags "${args["server-v8-flags"]}"`
        : ""),
  );
  out(
    `Stream: ${basename(song)} looped by the radio, Opus 128 kbit/s in Ogg; the same stream on ` +
      `tls-server /stream (HTTPS) and icecast2 ${MOUNT} (HTTPS). Window ${seconds} s.`,
  );
  out("");
  out(
    "| N | soundsock net CPU-s/listener-min | icecast2 net CPU-s/listener-min | ratio | " +
      "soundsock KiB RSS/listener | icecast2 KiB RSS/listener | ratio | " +
      "B/s per listener soundsock (min / median) | icecast2 (min / median) | failures s/i |",
  );
  out("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    if (r.error) {
      out(`| ${r.n} | failed: ${r.error} |||||||||`);
      continue;
    }
    out(
      `| ${r.n} | ${fmt(netPerMin(r.soundsock), 5)} | ${fmt(netPerMin(r.icecast), 5)} | ` +
        `${fmt(netPerMin(r.soundsock) / netPerMin(r.icecast), 2)} | ` +
        `${fmt(rssPer(r.soundsock), 1)} | ${fmt(rssPer(r.icecast), 1)} | ` +
        `${fmt(rssPer(r.soundsock) / rssPer(r.icecast), 2)} | ` +
        `${rate(r.soundsock)} | ${rate(r.icecast)} | ${fails(r.soundsock)} / ${fails(r.icecast)} |`,
    );
  }
  out("");
  out(
    "| N | server | CPU-s in window | gross CPU-s/listener-min | 0-listener CPU % | window CPU % | " +
      "RSS MiB mean / max / end of window (0-listener mean) | machine busy % | sample failure |",
  );
  out("|---:|---|---:|---:|---:|---:|---:|---:|---|");
  for (const r of results) {
    for (const m of [r.soundsock, r.icecast]) {
      if (!m) continue;
      out(
        `| ${m.n} | ${m.server} | ${fmt(m.cpuS, 2)} | ${fmt(grossPerMin(m), 5)} | ` +
          `${fmt(100 * m.baseCpuRate, 1)} | ${fmt((100 * m.cpuS) / m.seconds, 1)} | ` +
          `${fmt(m.rssKiB / 1024, 1)} / ${fmt(m.rssMaxKiB / 1024, 1)} / ` +
          `${fmt(m.rssEndKiB / 1024, 1)} (${fmt(m.rssBaseKiB / 1024, 1)}) | ` +
          `${fmt(m.machineBusyPct, 0)} | ${m.window.failureSample || "—"} |`,
      );
    }
  }
}

if (args.role === "listeners") await listenerRole();
else await parent();
