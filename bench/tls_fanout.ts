/**
 * Radio fan-out over TLS: the real tls-server (its own process) streaming the radio to N TLS
 * listeners on loopback, next to Debian's icecast2 serving the same song in the same codec and
 * bitrate to the same N over TLS. Per N and server: bytes and writes per second each listener
 * gets, CPU seconds per listener-minute (gross, and net of the server's own 0-listener rate),
 * net CPU per write and per kB, RSS per listener (above the server's 0-listener baseline), and
 * failures (listeners that did not join, were dropped, or fell below half the stream's rate).
 *
 *   deno run -A bench/tls_fanout.ts --listeners 100,500,1000 --seconds 20
 *   deno run -A bench/tls_fanout.ts --listeners 1000,1000,1000,1000,1000 --seconds 15
 *     [--settle 3] [--only soundsock|icecast] [--song songs/01-morning-arpeggio.mp3]
 *     [--bitrate 80000] [--icecast-format opus|mp3] [--base-seconds SECONDS]
 *     [--server-v8-flags --max-semi-space-size=1]
 *
 * An N given more than once is a paired series: each row runs both servers, every other row
 * icecast2 first, and a last table gives each ratio's median and range over the rows (single
 * runs vary by ±15 % on a 2-core VM, more than the differences being looked for).
 *
 * Like for like (issue #9: "both ≤ 100 ms of audio per write"). tls-server's station is Opus;
 * here it runs at `--bitrate` (default 80000), and it writes one DATA frame of ≤ 100 ms of
 * audio per listener (10 writes/s; counted by the listeners from the frame headers). icecast2
 * relays, by default (`--icecast-format opus`), ffmpeg's Ogg/Opus encode of the same song at
 * the same bitrate in pages of ≤ 100 ms (`-page_duration 100000`), so it too writes ~10 times
 * a second (counted from its write(2) calls, `syscw` of /proc/PID/io). `--icecast-format mp3`
 * relays the MP3 file copied instead (icecast2 then writes ~7 times a second, ~140 ms each:
 * fewer, larger writes than tls-server's). Both servers also have a fixed cost that does not
 * grow with listeners (tls-server decodes, resamples and encodes the station; icecast2 reads
 * its source): it is measured for `--base-seconds` (default: as long as `--seconds`; a short
 * early window overstated it ~2×) with the stream running and no listener, and subtracted for
 * the "net" figures.
 *
 * `--server-v8-flags` runs tls-server with `deno run --v8-flags=…` (e.g. a 1 MiB young
 * generation instead of V8's default).
 *
 * How. Certificates: lib/tls/certs.ts createCertificates in a temp dir (ECDSA P-256; icecast
 * gets the same certificate and key in one PEM). Both servers serve one MP3 looped:
 *
 * - soundsock: `deno run -A cmd/tls_server.ts --port 0 --ready-json --cert … --key …
 *   --songs <temp dir holding only the song> --max-per-ip 0 --max-clients 100000 --bitrate B`
 *   (stdout ready line).
 * - icecast2 (2.4.4 syntax): one `<listen-socket>` with `<ssl>1</ssl>` for the listeners, one
 *   plain socket for the source and status, `<paths><ssl-certificate>` = cert+key PEM; as root
 *   it drops to nobody (`<changeowner>`), so the temp dir is 0755. Source: `ffmpeg -re
 *   -stream_loop -1 -i song.mp3 -c:a libopus -b:a B -vbr constrained -page_duration 100000
 *   -content_type audio/ogg -f ogg icecast://source:…@127.0.0.1:PLAIN/radio.opus` (or, with
 *   `--icecast-format mp3`, `-c copy … -f mp3 …/radio.mp3`; ffmpeg's CPU is not counted).
 *
 * Listeners run in a child process (this file with `--role listeners`) so the server's CPU
 * figure is its own: N `Deno.connectTls` connections with `caCerts` (32 handshakes at a time);
 * soundsock listeners send REQUEST {"op":"radio"} (lib/wire encodeControl), icecast listeners
 * `GET /radio.opus HTTP/1.0` (or `/radio.mp3`); all then read continuously and count bytes (discarded). The
 * first bytes are checked (ACCEPT frame / HTTP 200). Once all joined and `--settle` s passed,
 * the parent reads the server's utime+stime (/proc/PID/stat, CLK_TCK 100), VmRSS
 * (/proc/PID/status; the mean of samples every 250 ms) and syscw (/proc/PID/io) at the start
 * and end of a `--seconds` window; listeners count bytes (and soundsock frames) only inside
 * it. The 0-listener baseline (CPU rate and RSS) is taken from 3 s after the server is ready (for icecast: with the source
 * connected). Each N starts fresh server processes. Listener processes, servers and ffmpeg
 * share the 2 cores.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { basename, join } from "@std/path";
import { createCertificates } from "../lib/tls/certs.ts";
import { encodeControl } from "../lib/wire/messages.ts";
import { FrameType } from "../lib/wire/frame.ts";
import { packetizeSong } from "../lib/media/packetizer.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import {
  fmt,
  freePort,
  Lines,
  machineBusy,
  median,
  roleArgs,
  RoleProcess,
  RssSampler,
  sampleProcess,
  serveRoleCommands,
  sleep,
  stopProcess,
  withNoFile,
  writeSyscalls,
} from "./_proc.ts";
import { closeAndExit, type StreamWindow, streamWindow } from "./_stream_listeners.ts";

const ROOT = new URL("../", import.meta.url).pathname;
/** tls-server's Opus bitrate here: the 80 kbit/s of the MP3 icecast2 relays (like for like). */
const DEFAULT_BITRATE = 80_000;
const SELF = new URL(import.meta.url).pathname;
const SOURCE_PASSWORD = "bench-source-pw";
/**
 * What icecast2 relays: `opus` (default) — ffmpeg encodes the song to Ogg/Opus at the station's
 * bitrate in pages of ≤ 100 ms (`-page_duration 100000`), so both servers send the same codec
 * at the same granularity (issue #9: "both ≤ 100 ms of audio per write"); `mp3` — the MP3 file
 * copied (icecast2 then writes ~140 ms of audio at a time).
 */
const icecastFormat = () => (args["icecast-format"] ?? "opus") as "opus" | "mp3";
const mount = () => icecastFormat() === "opus" ? "/radio.opus" : "/radio.mp3";
const enc = new TextEncoder();
/** Progress on stderr (stdout is the table). */
const progress = (line: string) => Deno.stderr.writeSync(enc.encode(line + "\n"));

/** The 0-listener window: as long as the measured one unless asked (the station's work varies). */
const baseSeconds = () => Number(args["base-seconds"] ?? args.seconds ?? 20);
const args = parseArgs(Deno.args, {
  string: [
    "listeners",
    "seconds",
    "settle",
    "only",
    "song",
    "role",
    "mode",
    "port",
    "count",
    "ca",
    "nominal",
    "server-v8-flags",
    "bitrate",
    "base-seconds",
    "icecast-format",
  ],
});

// ---------------------------------------------------------------------------------------------
// Child role: N TLS listeners, driven by lines on stdin, reporting JSON lines on stdout.
// ---------------------------------------------------------------------------------------------

interface WindowReport extends StreamWindow {
  /** The fastest listener's bytes/s inside the window. */
  maxBps: number;
  /** Listeners below half of the stream's nominal rate (counted as failures). */
  slow: number;
  totalBytes: number;
  /** soundsock: frames per second per listener inside the window (median); NaN for icecast. */
  medianFramesPerS: number;
}

async function listenerRole(): Promise<void> {
  const count = Number(args.count);
  const port = Number(args.port);
  const mode = args.mode as "soundsock" | "icecast";
  const nominal = Number(args["nominal"] ?? 0);
  const ca = await Deno.readTextFile(args.ca!);
  const say = (obj: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(obj) + "\n"));
  const hello = mode === "soundsock"
    ? encodeControl(FrameType.REQUEST, { op: "radio" })
    : enc.encode(`GET ${mount()} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: tls_fanout\r\n\r\n`);
  interface L {
    conn?: Deno.TlsConn;
    joined: boolean;
    failed: string;
    ended: string;
    windowBytes: number;
    /** soundsock frames that started inside the window (each is one write of tls-server). */
    windowFrames: number;
  }
  const ls: L[] = Array.from(
    { length: count },
    () => ({ joined: false, failed: "", ended: "", windowBytes: 0, windowFrames: 0 }),
  );
  let windowOpen = false;
  let totalBytes = 0;

  const run = async (l: L): Promise<void> => {
    let conn: Deno.TlsConn;
    try {
      conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca] });
      await conn.handshake();
      await conn.write(hello);
    } catch (error) {
      l.failed = `connect: ${(error as Error).message}`;
      return;
    }
    l.conn = conn;
    const buf = new Uint8Array(16 * 1024);
    let first = true;
    // Frame boundaries (soundsock): bytes left in the current frame, and a partial header.
    let left = 0;
    const head = new Uint8Array(28);
    let headLen = 0;
    const frames = (n: number) => {
      let at = 0;
      while (at < n) {
        if (left > 0) {
          const take = Math.min(left, n - at);
          left -= take;
          at += take;
          continue;
        }
        const take = Math.min(28 - headLen, n - at);
        head.set(buf.subarray(at, at + take), headLen);
        headLen += take;
        at += take;
        if (headLen < 28) break;
        // Payload length at bytes 24..27, then the CRC (4) and the payload.
        left = new DataView(head.buffer).getUint32(24) + 4;
        headLen = 0;
        if (windowOpen) l.windowFrames++;
      }
    };
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch (error) {
        (l.joined ? (x: string) => (l.ended = x) : (x: string) => (l.failed = x))(
          `read: ${(error as Error).message}`,
        );
        return;
      }
      if (n === null) {
        if (l.joined) l.ended = "eof";
        else l.failed = "eof before any data";
        return;
      }
      if (first) {
        first = false;
        if (mode === "soundsock") {
          if (buf[0] !== 0x53 || buf[1] !== 0x4b || buf[3] !== FrameType.ACCEPT) {
            l.failed = `first frame type 0x${buf[3]?.toString(16)} (not ACCEPT)`;
            conn.close();
            return;
          }
        } else {
          const head = new TextDecoder().decode(buf.subarray(0, Math.min(n, 64)));
          if (!/^(HTTP\/1\.[01]|ICY) 200/.test(head)) {
            l.failed = `HTTP: ${head.split("\r\n")[0]}`;
            conn.close();
            return;
          }
        }
        l.joined = true;
      }
      totalBytes += n;
      if (windowOpen) l.windowBytes += n;
      if (mode === "soundsock") frames(n);
    }
  };

  // Connect 32 at a time (a handshake storm of 1000 would only time itself out).
  const tasks: Promise<void>[] = [];
  let next = 0;
  const connected: Promise<void>[] = [];
  for (let w = 0; w < 32; w++) {
    connected.push((async () => {
      while (next < ls.length) {
        const l = ls[next++]!;
        const t = run(l);
        tasks.push(t);
        // Wait for this one to join (or fail) before opening the next.
        while (!l.joined && !l.failed) await Promise.race([t, sleep(5)]);
      }
    })());
  }
  await Promise.all(connected);
  say({
    event: "joined",
    joined: ls.filter((l) => l.joined).length,
    failed: ls.filter((l) => l.failed).length,
    failureSample: ls.find((l) => l.failed)?.failed ?? "",
  });

  let t0 = 0;
  await serveRoleCommands({
    start: () => {
      for (const l of ls) l.windowBytes = l.windowFrames = 0;
      windowOpen = true;
      t0 = performance.now();
    },
    stop: () => {
      windowOpen = false;
      const secs = (performance.now() - t0) / 1000;
      const { report: counts, joined, bps } = streamWindow(ls, secs);
      const report: WindowReport = {
        ...counts,
        maxBps: bps[bps.length - 1] ?? 0,
        slow: nominal > 0 ? bps.filter((b) => b < nominal / 2).length : 0,
        totalBytes,
        medianFramesPerS: mode === "soundsock"
          ? (joined.map((l) => l.windowFrames / secs).sort((a, b) => a - b)[
            Math.floor(joined.length / 2)
          ] ?? NaN)
          : NaN,
      };
      say({ event: "window", ...report });
    },
    quit: () => closeAndExit(ls),
  });
  void tasks;
}

// ---------------------------------------------------------------------------------------------
// Parent: orchestration and /proc measurements.
// ---------------------------------------------------------------------------------------------

interface Listeners {
  proc: RoleProcess;
  joined: number;
  failed: number;
  failureSample: string;
}

async function startListeners(
  mode: "soundsock" | "icecast",
  n: number,
  port: number,
  ca: string,
  nominal: number,
): Promise<Listeners> {
  const proc = new RoleProcess(withNoFile(
    Deno.execPath(),
    roleArgs(SELF, "listeners", { mode, count: n, port, ca, nominal }),
    { cwd: ROOT, stdin: "piped", stdout: "piped", stderr: "inherit" },
  ));
  try {
    const msg = await proc.expect<Omit<Listeners, "proc">>("joined", 180_000, "listeners");
    return { proc, joined: msg.joined, failed: msg.failed, failureSample: msg.failureSample };
  } catch (error) {
    await proc.stop();
    throw error;
  }
}

interface Measured {
  server: "soundsock" | "icecast2";
  n: number;
  seconds: number;
  cpuS: number;
  /** CPU-s per s with the stream running and 0 listeners (station encode; icecast's source). */
  baseCpuRate: number;
  /** write(2) calls in the window (icecast2's writes to listeners; NaN for tls-server). */
  writeCalls: number;
  rssBaseKiB: number;
  /** Mean RSS over the window (sampled every 250 ms); its largest and last sample. */
  rssKiB: number;
  rssMaxKiB: number;
  rssEndKiB: number;
  window: WindowReport;
  listenerCpuPct: number;
  machineBusyPct: number;
}

async function measureWindow(
  server: Measured["server"],
  pid: number,
  ls: Listeners,
  n: number,
  seconds: number,
  base: Baseline,
): Promise<Measured> {
  await ls.proc.tell("start");
  const w0 = writeSyscalls(pid);
  const s0 = sampleProcess(pid);
  const l0 = sampleProcess(ls.proc.child.pid);
  const m0 = machineBusy();
  const rss = new RssSampler(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const r = rss.stop();
  const s1 = sampleProcess(pid);
  const w1 = writeSyscalls(pid);
  const l1 = sampleProcess(ls.proc.child.pid);
  const m1 = machineBusy();
  const wall = (performance.now() - t0) / 1000;
  await ls.proc.tell("stop");
  const window = JSON.parse(
    await ls.proc.out.next((l) => l.includes('"window"'), 30_000, "window report"),
  ) as WindowReport;
  return {
    server,
    n,
    seconds: wall,
    cpuS: s1.cpuS - s0.cpuS,
    baseCpuRate: base.cpuRate,
    writeCalls: server === "icecast2" ? w1 - w0 : NaN,
    rssBaseKiB: base.rssKiB,
    rssKiB: r.meanKiB,
    rssMaxKiB: r.maxKiB,
    rssEndKiB: s1.rssKiB,
    window,
    listenerCpuPct: (100 * (l1.cpuS - l0.cpuS)) / wall,
    machineBusyPct: (100 * (m1[0] - m0[0])) / (m1[1] - m0[1]),
  };
}

interface Baseline {
  cpuRate: number;
  rssKiB: number;
}

/** CPU rate and mean RSS of a server streaming to nobody, over `seconds`. */
async function baseline(pid: number, seconds: number): Promise<Baseline> {
  const a = sampleProcess(pid);
  const rss = new RssSampler(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const b = sampleProcess(pid);
  return {
    cpuRate: (b.cpuS - a.cpuS) / ((performance.now() - t0) / 1000),
    rssKiB: rss.stop().meanKiB,
  };
}

interface Setup {
  tmp: string;
  songsDir: string;
  songPath: string;
  ca: string;
  cert: string;
  key: string;
  /** cert + key in one file, world-readable (icecast runs as nobody). */
  icecastPem: string;
}

async function runSoundsock(
  setup: Setup,
  n: number,
  seconds: number,
  settle: number,
  nominal: number,
): Promise<Measured> {
  // By default as `deno task tls-server` runs it (deno.json).
  const v8Flags = args["server-v8-flags"] ?? "--max-semi-space-size=1";
  const server = withNoFile(Deno.execPath(), [
    "run",
    "-A",
    ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
    "cmd/tls_server.ts",
    "--port",
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
    "--bitrate",
    String(Number(args.bitrate ?? DEFAULT_BITRATE)),
  ], { cwd: ROOT, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  const errLines: string[] = [];
  new Lines(server.stderr, (l) => errLines.push(l));
  const out = new Lines(server.stdout);
  try {
    let port: number;
    try {
      const ready = JSON.parse(await out.next((l) => l.includes('"ready"'), 60_000, "tls-server"));
      port = ready.port;
    } catch (error) {
      throw new Error(`tls-server did not start: ${errLines.slice(-5).join(" | ")}`, {
        cause: error,
      });
    }
    await sleep(3000); // station running, start-up work done, 0 listeners
    const base = await baseline(server.pid, baseSeconds());
    const ls = await startListeners("soundsock", n, port, setup.ca, nominal);
    try {
      if (ls.joined < n) {
        progress(`warning: soundsock ${ls.joined}/${n} joined (${ls.failureSample})`);
        progress(`  tls-server said: ${errLines.slice(-5).join(" | ")}`);
      }
      await sleep(settle * 1000);
      return await measureWindow("soundsock", server.pid, ls, n, seconds, base);
    } finally {
      await ls.proc.stop();
    }
  } finally {
    await stopProcess(server, progress);
  }
}

async function icecastStatus(port: number): Promise<{ icestats: { source?: unknown } } | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/status-json.xsl`);
    return await r.json();
  } catch {
    return null;
  }
}

async function runIcecast(
  setup: Setup,
  n: number,
  seconds: number,
  settle: number,
  nominal: number,
): Promise<Measured> {
  const dir = await Deno.makeTempDir({ dir: setup.tmp, prefix: "icecast-" });
  await Deno.chmod(dir, 0o755);
  await Deno.mkdir(join(dir, "log"));
  await Deno.chmod(join(dir, "log"), 0o777);
  const plain = freePort();
  const tls = freePort();
  const root = Deno.uid() === 0;
  await Deno.writeTextFile(
    join(dir, "icecast.xml"),
    `<icecast>
  <location>bench</location><admin>bench@localhost</admin>
  <limits><clients>${n + 100}</clients><sources>2</sources></limits>
  <authentication><source-password>${SOURCE_PASSWORD}</source-password>
    <admin-user>admin</admin-user><admin-password>bench-admin-pw</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>${plain}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <listen-socket><port>${tls}</port><bind-address>127.0.0.1</bind-address><ssl>1</ssl></listen-socket>
  <paths><basedir>/usr/share/icecast2</basedir><logdir>${dir}/log</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot>
    <ssl-certificate>${setup.icecastPem}</ssl-certificate></paths>
  <logging><errorlog>error.log</errorlog><accesslog>access.log</accesslog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>${
      root ? "<changeowner><user>nobody</user><group>nogroup</group></changeowner>" : ""
    }</security>
</icecast>`,
  );
  const errorLog = async () =>
    (await Deno.readTextFile(join(dir, "log", "error.log")).catch(() => "")).split("\n")
      .slice(-6).join(" | ");
  const icecast = withNoFile("icecast2", ["-c", join(dir, "icecast.xml")], {
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const icecastErr: string[] = [];
  new Lines(icecast.stderr, (l) => icecastErr.push(l));
  let ffmpeg: Deno.ChildProcess | undefined;
  try {
    for (let i = 0; !(await icecastStatus(plain)); i++) {
      if (i > 200) {
        throw new Error(`icecast2 did not start: ${icecastErr.join(" | ")} ${await errorLog()}`);
      }
      await sleep(50);
    }
    ffmpeg = new Deno.Command("ffmpeg", {
      args: [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-re",
        "-stream_loop",
        "-1",
        "-i",
        setup.songPath,
        ...(icecastFormat() === "opus"
          ? [
            // Constrained VBR: libopus's default, which tls-server's station keeps.
            ...["-c:a", "libopus", "-b:a", String(Number(args.bitrate ?? DEFAULT_BITRATE))],
            ...["-vbr", "constrained", "-ar", "48000", "-ac", "2"],
            ...["-page_duration", "100000", "-content_type", "audio/ogg", "-f", "ogg"],
          ]
          : ["-c", "copy", "-content_type", "audio/mpeg", "-f", "mp3"]),
        `icecast://source:${SOURCE_PASSWORD}@127.0.0.1:${plain}${mount()}`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    for (let i = 0; !(await icecastStatus(plain))?.icestats.source; i++) {
      if (i > 200) throw new Error(`the ${mount()} mount did not appear: ${await errorLog()}`);
      await sleep(50);
    }
    await sleep(3000); // source connected and streaming, 0 listeners
    const base = await baseline(icecast.pid, baseSeconds());
    const ls = await startListeners("icecast", n, tls, setup.ca, nominal);
    try {
      if (ls.joined < n) {
        progress(
          `warning: icecast2 ${ls.joined}/${n} joined (${ls.failureSample}); ${await errorLog()}`,
        );
      }
      await sleep(settle * 1000);
      return await measureWindow("icecast2", icecast.pid, ls, n, seconds, base);
    } finally {
      await ls.proc.stop();
    }
  } finally {
    await stopProcess(ffmpeg, progress);
    await stopProcess(icecast, progress);
  }
}

/** Bytes per second of the radio stream for this song (DATA payload + 32-byte headers). */
async function nominalRate(songsDir: string): Promise<number> {
  const catalog = await SongCatalog.open(songsDir);
  const song = catalog.songs[0]!;
  const p = await packetizeSong(song, 16 * 1024);
  const bytes = p.packets.reduce((a, k) => a + k.payload.length + 32, 0);
  return bytes / (p.durationUs / 1e6);
}

async function parent(): Promise<void> {
  const ns = String(args.listeners ?? "100,500,1000").split(",").map(Number).filter((x) => x > 0);
  const seconds = Number(args.seconds ?? 20);
  const settle = Number(args.settle ?? 3);
  const only = args.only;
  const song = args.song ?? join(ROOT, "songs", "01-morning-arpeggio.mp3");
  const out = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));

  const tmp = await Deno.makeTempDir({ prefix: "soundsock-tls-fanout-" });
  await Deno.chmod(tmp, 0o755);
  const results: { soundsock?: Measured; icecast?: Measured; n: number; error?: string }[] = [];
  let nominal = 0;
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
    await Deno.chmod(songsDir, 0o755);
    const songPath = join(songsDir, basename(song));
    await Deno.copyFile(song, songPath);
    await Deno.chmod(songPath, 0o644);
    const setup: Setup = {
      tmp,
      songsDir,
      songPath,
      ca: certs.caCert,
      cert: certs.serverCert,
      key: certs.serverKey,
      icecastPem,
    };
    nominal = await nominalRate(songsDir);
    for (const [index, n] of ns.entries()) {
      const row: (typeof results)[number] = { n };
      results.push(row);
      const runSoundsockRow = async () => {
        if (only === "icecast") return;
        progress(`N=${n}: soundsock tls-server…`);
        row.soundsock = await runSoundsock(setup, n, seconds, settle, nominal);
        progress(`  ${fmt(row.soundsock.cpuS, 2)} CPU-s in ${fmt(row.soundsock.seconds, 1)} s`);
      };
      const runIcecastRow = async () => {
        if (only === "soundsock") return;
        progress(`N=${n}: icecast2…`);
        row.icecast = await runIcecast(setup, n, seconds, settle, nominal);
        progress(`  ${fmt(row.icecast.cpuS, 2)} CPU-s in ${fmt(row.icecast.seconds, 1)} s`);
      };
      try {
        // Every other row runs icecast2 first, so repeated rows of one N (a paired series,
        // `--listeners 1000,1000,…`) do not always give one server the machine's first state.
        if (index % 2 === 0) {
          await runSoundsockRow();
          await runIcecastRow();
        } else {
          await runIcecastRow();
          await runSoundsockRow();
        }
      } catch (error) {
        row.error = (error as Error).message;
        progress(`N=${n}: failed: ${row.error}`);
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }

  const perMin = (m?: Measured) => m ? m.cpuS / (m.n * m.seconds / 60) : NaN;
  /** CPU above the 0-listener rate (tls-server's station encode, icecast2's source). */
  const netCpu = (m?: Measured) => m ? m.cpuS - m.baseCpuRate * m.seconds : NaN;
  const netPerMin = (m?: Measured) => m ? netCpu(m) / (m.n * m.seconds / 60) : NaN;
  const rssPer = (m?: Measured) => m ? (m.rssKiB - m.rssBaseKiB) / m.n : NaN;
  const writesPerS = (m?: Measured) =>
    !m
      ? NaN
      : m.server === "icecast2"
      ? m.writeCalls / (m.n * m.seconds)
      : m.window.medianFramesPerS;
  const bytesPerS = (m?: Measured) => m ? m.window.medianBps : NaN;
  const usPerWrite = (m?: Measured) =>
    m ? (1e6 * netCpu(m)) / (writesPerS(m) * m.n * m.seconds) : NaN;
  const usPerKB = (m?: Measured) =>
    m ? (1e6 * netCpu(m)) / ((bytesPerS(m) * m.n * m.seconds) / 1000) : NaN;
  const failures = (m?: Measured) =>
    m
      ? String(m.window.joinFailed + m.window.dropped + m.window.slow) +
        (m.window.joinFailed + m.window.dropped + m.window.slow > 0
          ? ` (join ${m.window.joinFailed}, dropped ${m.window.dropped}, slow ${m.window.slow})`
          : "")
      : "—";
  const bitrate = Number(args.bitrate ?? DEFAULT_BITRATE);
  out(
    `Reproduce: deno run -A bench/tls_fanout.ts --listeners ${ns.join(",")} --seconds ${seconds}` +
      (args.settle ? ` --settle ${settle}` : "") + (only ? ` --only ${only}` : "") +
      (args.bitrate ? ` --bitrate ${bitrate}` : "") +
      (args["base-seconds"] ? ` --base-seconds ${baseSeconds()}` : "") +
      (args["server-v8-flags"] ? ` --server-v8-flags ${args["server-v8-flags"]}` : "") +
      (args["icecast-format"] ? ` --icecast-format ${icecastFormat()}` : ""),
  );
  out(
    `Stream: ${basename(song)} looped; icecast2 relays ` +
      (icecastFormat() === "opus"
        ? `ffmpeg's Ogg/Opus of it at ${bitrate / 1000} kbit/s in ≤ 100 ms pages`
        : "the MP3 file as it is") +
      `; tls-server's Opus station at ${
        bitrate / 1000
      } kbit/s. Window ${seconds} s after all joined + ${settle} s; ` +
      `CPU = utime+stime of the server process (/proc/PID/stat, 10 ms ticks); net = minus the ` +
      `server's own rate with the stream running and 0 listeners (${baseSeconds()} s before ` +
      `they join). Writes/s: tls-server's frames per listener (one write each), icecast2's ` +
      `write(2) calls (/proc/PID/io syscw) per listener.`,
  );
  out("");
  out(
    "| N | server | B/s per listener (median) | writes/s per listener | B per write | " +
      "CPU-s/listener-min (gross) | net | net µs CPU per write | net µs CPU per kB | " +
      "KiB RSS/listener | failures |",
  );
  out("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const r of results) {
    if (r.error && !r.soundsock && !r.icecast) {
      out(`| ${r.n} | failed: ${r.error} ||||||||||`);
      continue;
    }
    for (const m of [r.soundsock, r.icecast]) {
      if (!m) continue;
      out(
        `| ${m.n} | ${m.server} | ${fmt(bytesPerS(m), 0)} | ${fmt(writesPerS(m), 2)} | ` +
          `${fmt(bytesPerS(m) / writesPerS(m), 0)} | ${fmt(perMin(m), 5)} | ` +
          `${fmt(netPerMin(m), 5)} | ${fmt(usPerWrite(m), 1)} | ${fmt(usPerKB(m), 2)} | ` +
          `${fmt(rssPer(m), 1)} | ${failures(m)} |`,
      );
    }
  }
  out("");
  out(
    "| N | ratio CPU/listener (gross) | ratio net | ratio net per kB | ratio net per write | " +
      "ratio RSS/listener |",
  );
  out("|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    if (!r.soundsock || !r.icecast) continue;
    const ratio = (f: (m?: Measured) => number) => fmt(f(r.soundsock) / f(r.icecast), 2);
    out(
      `| ${r.n} | ${ratio(perMin)} | ${ratio(netPerMin)} | ${ratio(usPerKB)} | ` +
        `${ratio(usPerWrite)} | ${ratio(rssPer)} |`,
    );
  }
  // A paired series (one N repeated): the median and range of each ratio over its rows.
  const series = new Map<number, (typeof results)[number][]>();
  for (const r of results) {
    if (r.soundsock && r.icecast) series.set(r.n, [...(series.get(r.n) ?? []), r]);
  }
  if ([...series.values()].some((rows) => rows.length > 1)) {
    out("");
    out(
      "| N | pairs | ratio gross: median (range) | net | net per kB | net per write | RSS/listener |",
    );
    out("|---:|---:|---:|---:|---:|---:|---:|");
    for (const [n, rows] of series) {
      if (rows.length < 2) continue;
      const summary = (f: (m?: Measured) => number) => {
        const ratios = rows.map((r) => f(r.soundsock) / f(r.icecast));
        return `${fmt(median(ratios), 2)} (${fmt(Math.min(...ratios), 2)}–` +
          `${fmt(Math.max(...ratios), 2)})`;
      };
      out(
        `| ${n} | ${rows.length} | ${summary(perMin)} | ${summary(netPerMin)} | ` +
          `${summary(usPerKB)} | ${summary(usPerWrite)} | ${summary(rssPer)} |`,
      );
    }
  }
  out("");
  out(
    "| N | server | CPU-s in window | % of a core | % of a core with 0 listeners | " +
      "RSS MiB mean / max / end of window (0-listener mean) | listener proc CPU % | machine busy % | sample failure |",
  );
  out("|---:|---|---:|---:|---:|---:|---:|---:|---|");
  for (const r of results) {
    for (const m of [r.soundsock, r.icecast]) {
      if (!m) continue;
      out(
        `| ${m.n} | ${m.server} | ${fmt(m.cpuS, 2)} | ${fmt((100 * m.cpuS) / m.seconds, 1)} | ` +
          `${fmt(100 * m.baseCpuRate, 1)} | ` +
          `${fmt(m.rssKiB / 1024, 1)} / ${fmt(m.rssMaxKiB / 1024, 1)} / ` +
          `${fmt(m.rssEndKiB / 1024, 1)} (${fmt(m.rssBaseKiB / 1024, 1)}) | ` +
          `${fmt(m.listenerCpuPct, 0)} | ${fmt(m.machineBusyPct, 0)} | ` +
          `${m.window.failureSample || "—"} |`,
      );
    }
    if (r.error) out(`| ${r.n} | error | ${r.error} ||||||`);
  }
}

if (args.role === "listeners") await listenerRole();
else await parent();
