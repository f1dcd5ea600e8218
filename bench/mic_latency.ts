/**
 * mic-broadcast end-to-end latency on loopback: capture → hand-off to the output, as the
 * listeners' own statistics measure it (STREAM_INFO captureEpochUs + DATA timestamp vs the
 * listener's wall clock when the decoded packet was written; docs/PROTOCOL.md §5.4), for 10 and
 * 20 ms Opus frames, UDP and TLS, 1 and 100 listeners; and the broadcaster's CPU.
 *
 *   deno run -A bench/mic_latency.ts [--seconds 5] [--listeners 1,100] [--frames 10,20]
 *     [--transports udp,tls] [--buffer 40] [--procs 4] [--probe]
 *   deno run -A bench/mic_latency.ts --device-click [--clicks 12] [--buffer 40] [--runs 1]
 *     [--paths udp,tls,trx]
 *
 * `--device-click`: the latency heard — a click into a PulseAudio virtual microphone →
 * mic-broadcast → udp-client / tls-client → a virtual speaker, and the same through Debian's
 * trx (`trx-tx` → `trx-rx`, ALSA routed to the same PulseAudio by the pulse plugin), measured
 * in one stereo recording (bench/_click_latency.ts has the how). Needs pulseaudio; trx is
 * optional (its row says why it did not run).
 *
 * How: `cmd/mic_broadcast.ts --tone 440 --udp 127.0.0.1:0 --tls 127.0.0.1:0` runs in its own
 * process (a virtual microphone paced in real time, mono, Opus 64 kbit/s). The listeners run in
 * `--procs` listener processes (this file with `--worker`; listener g in process g mod procs, so
 * 100 listeners are 4 × 25 by default — one process decoding 100 streams was the bottleneck of
 * the p99, not the broadcaster), every one a full listener (`--probe`: all but the last to join
 * only receive — no decode, no statistics — and that one is measured in its own process): UDP
 * ones are lib/udp/client.ts `listenRadio` (the handshake, tokens, heartbeats, the jitter
 * buffer with `--buffer` ms, Opus decode, the latency meter) writing to a null output; TLS ones are `TlsSongClient.radio()` into the same
 * MediaPlayout + LatencyMeter as tls-client radio, also to a null output. UDP listeners join
 * 120 ms apart (udp-server answers 20 requests a second per source IP, and a join takes two),
 * then all listen together for `--seconds`. Reported per configuration: the median over
 * listeners of their median and p99 latency, the worst p99, packets lost, and the broadcaster's
 * CPU (utime + stime from /proc over the listening window) as % of one core, and the listener
 * processes' together (a saturated listener side shows as ~200 % on 2 cores), and what every
 * other process on the host used meanwhile (/proc/stat busy time less ours). The null output
 * takes audio at once, so the figure excludes a device's queue (which adds its ring: tens of ms).
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { EventLog } from "../lib/cli/event_log.ts";
import { LatencyMeter, type LiveLatencyReport, wallClockUs } from "../lib/live/latency.ts";
import { MediaPlayout } from "../lib/media/playout.ts";
import { createCertificates } from "../lib/tls/certs.ts";
import { TlsSongClient } from "../lib/tls/client.ts";
import { listenRadio } from "../lib/udp/client.ts";
import { sampleProcess } from "./_proc.ts";
import { type ClickPath, measureClicks, percentiles } from "./_click_latency.ts";

const args = parseArgs(Deno.args, {
  string: [
    "seconds",
    "listeners",
    "frames",
    "transports",
    "buffer",
    "clicks",
    "runs",
    "paths",
    "procs",
    // --worker: one listener process (spawned by the bench itself).
    "transport",
    "port",
    "count",
    "index",
    "start-at",
    "end-at",
    "ca",
    "offset",
  ],
  boolean: ["device-click", "worker", "quiet", "probe"],
  default: {
    procs: "4",
    clicks: "12",
    runs: "1",
    paths: "udp,tls,trx",
    seconds: "5",
    listeners: "1,100",
    frames: "10,20",
    transports: "udp,tls",
    buffer: "40",
  },
});
const seconds = Number(args.seconds);
const ROOT = new URL("../", import.meta.url).pathname;
const nullOutput = () => Promise.resolve({ write: () => Promise.resolve() });
const say = (t: string) => Deno.stdout.writeSync(new TextEncoder().encode(t + "\n"));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** UDP listeners join 120 ms apart (udp-server answers 20 requests/s per source IP). */
const joinGapFor = (transport: string) => transport === "udp" ? 120 : 20;

/** What one listener measured: its latency report (none if no packet came) and packets lost. */
interface ListenerResult {
  live?: LiveLatencyReport;
  lost: number;
}

/** One listener; `decode` false: it only receives (and heartbeats), no decode, no latency. */
function listenOne(
  transport: string,
  port: number,
  ms: number,
  caPem: string,
  decode: boolean,
): Promise<ListenerResult> {
  return transport === "udp"
    ? listenRadio({ hostname: "127.0.0.1", port }, {
      signal: new AbortController().signal,
      log: EventLog.none(),
      bufferMs: Number(args.buffer),
      maxSeconds: ms / 1000,
      ...(decode ? { openOutput: nullOutput } : {}),
    }).then((r) => ({ live: r.live, lost: r.lost }))
    : tlsListener(port, ms, caPem, decode).then((live) => ({ live, lost: 0 }));
}

if (args.worker) {
  // `--count` listeners of the global order g = offset + i × procs + index, joining at start-at +
  // g × gap, all listening until end-at (epoch ms); prints their results as one JSON line.
  // --quiet: receive-only listeners (no decode).
  const [count, index, procs] = [Number(args.count), Number(args.index), Number(args.procs)];
  const [startAt, endAt, port] = [
    Number(args["start-at"]),
    Number(args["end-at"]),
    Number(args.port),
  ];
  const caPem = args.transport === "tls" ? await Deno.readTextFile(args.ca!) : "";
  const runs: Promise<ListenerResult>[] = [];
  for (let i = 0; i < count; i++) {
    const g = Number(args.offset ?? 0) + i * procs + index;
    const joinAt = startAt + g * joinGapFor(args.transport!);
    await sleep(Math.max(0, joinAt - Date.now()));
    // Slow joins (a loaded machine) still leave everyone the measuring window.
    runs.push(
      listenOne(
        args.transport!,
        port,
        Math.max(seconds * 1000, endAt - Date.now()),
        caPem,
        !args.quiet,
      ),
    );
  }
  say(JSON.stringify(await Promise.all(runs)));
  Deno.exit(0);
}

const certDir = await Deno.makeTempDir({ prefix: "soundsock-bench-certs-" });
const certs = await createCertificates(certDir);

async function startBroadcaster(frameMs: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cmd/mic_broadcast.ts`,
      "--tone",
      "440",
      "--frame",
      String(frameMs),
      "--udp",
      "127.0.0.1:0",
      "--tls",
      "127.0.0.1:0",
      "--cert",
      certs.serverCert,
      "--key",
      certs.serverKey,
      "--max-listeners",
      "1000",
      "--max-per-ip",
      "0",
      "--ready-json",
      "-q",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("mic-broadcast exited");
    text += value;
  }
  void reader.cancel();
  const ready = JSON.parse(text.split("\n")[0]!) as { udpPort: number; tlsPort: number };
  return { child, ready };
}

async function tlsListener(
  port: number,
  ms: number,
  caPem: string,
  decode = true,
): Promise<LiveLatencyReport | undefined> {
  using client = await TlsSongClient.connect({ hostname: "127.0.0.1", port }, { caCerts: [caPem] });
  const stop = AbortSignal.timeout(ms);
  using playout = new MediaPlayout({ openOutput: nullOutput, signal: stop });
  const meter = new LatencyMeter();
  let epoch: number | undefined;
  try {
    for await (const event of client.radio(stop)) {
      if (event.type === "stream_info") {
        epoch = event.info.captureEpochUs;
        await playout.startStream(event.info, false);
      } else if (event.type === "data") {
        if (!decode) continue;
        await playout.media(event.payload);
        if (epoch !== undefined) meter.record(epoch + event.timestampUs, wallClockUs());
      }
    }
  } catch (error) {
    if (!stop.aborted) throw error;
  }
  return meter.count > 0 ? meter.report() : undefined;
}

/** A child process whose stderr is kept, started with Deno.env (PULSE_SERVER of the bench). */
function spawn(cmd: string, argv: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(cmd, {
    args: argv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const stderr = new Response(child.stderr).text();
  return {
    child,
    stdout,
    stderr,
    async stop(): Promise<{ stdout: string; stderr: string }> {
      try {
        child.kill("SIGINT");
      } catch { /* exited */ }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, 5000);
      await child.status;
      clearTimeout(t);
      return { stdout: await stdout, stderr: await stderr };
    },
  };
}

/** mic-broadcast on the virtual microphone; its ready line. */
async function micOnClickMic(transport: "udp" | "tls") {
  const mic = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cmd/mic_broadcast.ts`,
      "--audio-backend",
      "pulse",
      "--device",
      "ClickMic",
      `--${transport}`,
      "127.0.0.1:0",
      "--cert",
      certs.serverCert,
      "--key",
      certs.serverKey,
      "--ready-json",
      "-q",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = mic.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`mic-broadcast exited: ${await new Response(mic.stderr).text()}`);
    text += value;
  }
  void reader.cancel();
  void mic.stderr.cancel();
  const ready = JSON.parse(text.split("\n")[0]!) as { udpPort?: number; tlsPort?: number };
  return { mic, port: (transport === "udp" ? ready.udpPort : ready.tlsPort)! };
}

/** The last JSON line of a listener's stdout, its latency keys only. */
function listenerKeys(stdout: string): string | undefined {
  const line = stdout.trim().split("\n").at(-1);
  if (!line?.startsWith("{")) return undefined;
  const o = JSON.parse(line) as Record<string, unknown>;
  return Object.entries(o)
    .filter(([k]) => /latency_(median|device_median)|device_period|drift_level|underruns/.test(k))
    .map(([k, v]) => `${k}=${v}`).join(" ");
}

function ourPath(transport: "udp" | "tls"): ClickPath {
  return {
    name: `mic-broadcast → ${transport === "udp" ? "udp-client --radio" : "tls-client radio"}`,
    async start() {
      const { mic, port } = await micOnClickMic(transport);
      const common = [
        "--audio-backend",
        "pulse",
        "--device",
        "ClickSpeaker",
        "--buffer",
        args.buffer,
        "--stats-json",
      ];
      const listener = spawn(
        Deno.execPath(),
        transport === "udp"
          ? ["run", "-A", `${ROOT}cmd/udp_client.ts`, `127.0.0.1:${port}`, "--radio", ...common]
          : [
            "run",
            "-A",
            `${ROOT}cmd/tls_client.ts`,
            "radio",
            "--server",
            `127.0.0.1:${port}`,
            "--ca",
            certs.caCert,
            ...common,
          ],
        { NO_COLOR: "1" },
      );
      // Settled: the output open and the drift controller's target latched (3 s).
      await sleep(4000);
      return {
        async stop() {
          const said = await listener.stop();
          mic.kill("SIGINT");
          await mic.status;
          return listenerKeys(said.stdout) ?? said.stderr.trim().split("\n").at(-1);
        },
      };
    },
  };
}

/** Debian's trx: trx-tx from the virtual microphone → trx-rx to the virtual speaker. */
function trxPath(): ClickPath {
  return {
    name: "trx-tx → trx-rx (defaults: 20 ms frames, 16 ms buffers, 16 ms jitter)",
    async start(env) {
      // ALSA's pulse plugin (libasound2-plugins) honours PULSE_SERVER / PULSE_SINK / PULSE_SOURCE.
      const port = String(20_000 + Math.floor(Math.random() * 20_000));
      const alsa = { ...env, PULSE_SOURCE: "clickmic", PULSE_SINK: "clickspeaker" };
      const rx = spawn("trx-rx", ["-d", "pulse", "-h", "127.0.0.1", "-p", port, "-c", "1"], alsa);
      const tx = spawn("trx-tx", ["-d", "pulse", "-h", "127.0.0.1", "-p", port, "-c", "1"], alsa);
      await sleep(2000);
      for (const [name, p] of [["trx-rx", rx], ["trx-tx", tx]] as const) {
        const status = await Promise.race([p.child.status, sleep(0).then(() => undefined)]);
        if (status) {
          throw new Error(`${name} exited ${status.code}: ${(await p.stderr).trim()}`);
        }
      }
      return {
        async stop() {
          const [t, r] = [await tx.stop(), await rx.stop()];
          return `trx-tx: ${t.stderr.trim().split("\n").slice(-2).join(" | ")}; trx-rx: ${
            r.stderr.trim().split("\n").slice(-2).join(" | ")
          }`;
        },
      };
    },
  };
}

if (args["device-click"]) {
  const wanted = args.paths.split(",");
  const paths = [
    ...(wanted.includes("udp") ? [ourPath("udp")] : []),
    ...(wanted.includes("tls") ? [ourPath("tls")] : []),
    ...(wanted.includes("trx") ? [trxPath()] : []),
  ];
  const lines: string[] = [];
  for (let run = 1; run <= Number(args.runs); run++) {
    const results = await measureClicks(paths, { count: Number(args.clicks) });
    const ref = results.find((r) => r.name.startsWith("trx") && r.latenciesMs.length > 0);
    const refMedian = ref ? percentiles(ref.latenciesMs).median : undefined;
    for (const r of results) {
      const p = percentiles(r.latenciesMs);
      const ratio = refMedian && r !== ref ? `  ${(p.median / refMedian).toFixed(2)}x trx` : "";
      const line = r.error
        ? `run ${run}  ${r.name}: did not run: ${r.error}`
        : `run ${run}  ${r.name}: heard ${r.latenciesMs.length}/${r.fed} clicks  median ${
          p.median.toFixed(1)
        } ms  p95 ${p.p95.toFixed(1)} ms  [${
          r.latenciesMs.map((v) => v.toFixed(0)).join(" ")
        }]${ratio}${r.listenerSays ? `\n        listener: ${r.listenerSays}` : ""}`;
      lines.push(line);
      say(line);
    }
  }
  await Deno.remove(certDir, { recursive: true });
  Deno.exit(0);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/**
 * Runs `n` listeners in min(n, --procs) worker processes; resolves with all their results.
 * `--probe`: the first n − 1 only receive (no decode: their load on the broadcaster, not on
 * the cores), spread over --procs processes, and the last to join is the one full listener
 * measured, in a process of its own.
 */
function startListeners(
  transport: string,
  port: number,
  n: number,
  startAt: number,
  endAt: number,
) {
  type Worker = { count: number; index: number; procs: number; offset: number; quiet: boolean };
  const spawnWorker = (w: Worker) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}bench/mic_latency.ts`, "--worker"].concat(
        ["--transport", transport, "--port", String(port), "--count", String(w.count)],
        ["--index", String(w.index), "--procs", String(w.procs), "--buffer", args.buffer],
        ["--seconds", String(seconds), "--start-at", String(startAt), "--end-at", String(endAt)],
        ["--ca", certs.caCert, "--offset", String(w.offset)],
        w.quiet ? ["--quiet"] : [],
      ),
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return { child, out: new Response(child.stdout).text() };
  };
  const spread = args.probe ? n - 1 : n;
  const procs = Math.max(1, Math.min(spread, Number(args.procs)));
  const workers = spread === 0 ? [] : Array.from(
    { length: procs },
    (_, index) =>
      spawnWorker({
        count: Math.ceil((spread - index) / procs),
        index,
        procs,
        offset: 0,
        quiet: !!args.probe,
      }),
  );
  if (args.probe) {
    workers.push(spawnWorker({ count: 1, index: 0, procs: 1, offset: n - 1, quiet: false }));
  }
  return {
    pids: workers.map((w) => w.child.pid),
    async results(): Promise<ListenerResult[]> {
      const all: ListenerResult[] = [];
      for (const w of workers) {
        const { code } = await w.child.status;
        if (code !== 0) throw new Error(`listener process exited ${code}`);
        all.push(...JSON.parse((await w.out).trim().split("\n").at(-1)!) as ListenerResult[]);
      }
      return all;
    },
  };
}

const cpuOf = (pids: number[]) => pids.reduce((a, pid) => a + sampleProcess(pid).cpuS, 0);

/** The host's busy and total CPU seconds so far (/proc/stat: all cores; busy = not idle/iowait). */
function hostCpu(): { busyS: number; cores: number } {
  const lines = Deno.readTextFileSync("/proc/stat").split("\n");
  const f = lines[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, v) => a + v, 0);
  const cores = lines.filter((l) => /^cpu\d/.test(l)).length;
  return { busyS: (total - f[3]! - f[4]!) / 100, cores };
}

const rows: string[] = [];
for (const frameMs of args.frames.split(",").map(Number)) {
  for (const transport of args.transports.split(",")) {
    for (const n of args.listeners.split(",").map(Number)) {
      const { child, ready } = await startBroadcaster(frameMs);
      const joinMs = n * joinGapFor(transport);
      // The listener processes start (a deno start-up: ~1 s on a loaded host) before start-at.
      const startAt = Date.now() + 2500;
      const endAt = startAt + joinMs + seconds * 1000 + 500;
      const listeners = startListeners(
        transport,
        transport === "udp" ? ready.udpPort : ready.tlsPort,
        n,
        startAt,
        endAt,
      );
      // The window: everyone has joined and settled.
      await sleep(Math.max(0, startAt + joinMs + 300 - Date.now()));
      const [cpu0, lcpu0, host0] = [
        sampleProcess(child.pid).cpuS,
        cpuOf(listeners.pids),
        hostCpu(),
      ];
      const t0 = performance.now();
      await sleep(seconds * 1000 - 300);
      const [cpu1, lcpu1, host1] = [
        sampleProcess(child.pid).cpuS,
        cpuOf(listeners.pids),
        hostCpu(),
      ];
      const windowS = (performance.now() - t0) / 1000;
      // The other engineers' work on the same cores: the host's busy time less ours.
      const othersPct = ((host1.busyS - host0.busyS) - (cpu1 - cpu0) - (lcpu1 - lcpu0)) /
        windowS * 100;
      const cpuPct = (cpu1 - cpu0) / windowS * 100;
      const listenerPct = (lcpu1 - lcpu0) / windowS * 100;
      const results = await listeners.results();
      child.kill("SIGINT");
      await child.status;
      const lives = results.map((r) => r.live).filter((l): l is LiveLatencyReport => !!l);
      const row = [
        `${transport.toUpperCase()} ${frameMs} ms`,
        `N=${n}`,
        `listeners measured ${lives.length}${args.probe ? ` (probe; ${n - 1} receive-only)` : ""}`,
        `median ${median(lives.map((l) => l.medianMs)).toFixed(1)} ms`,
        `p99 ${median(lives.map((l) => l.p99Ms)).toFixed(1)} ms`,
        `worst p99 ${Math.max(...lives.map((l) => l.p99Ms)).toFixed(1)} ms`,
        `lost ${results.reduce((a, r) => a + r.lost, 0)}`,
        `broadcaster CPU ${cpuPct.toFixed(1)} %`,
        `listeners CPU ${listenerPct.toFixed(1)} % (${listeners.pids.length} processes)`,
        `other processes ${Math.max(0, othersPct).toFixed(0)} % of ${host1.cores} cores`,
        `load ${Deno.loadavg()[0]!.toFixed(1)}`,
      ].join("  ");
      rows.push(row);
      say(row);
    }
  }
}
await Deno.remove(certDir, { recursive: true });
say(`\n${rows.join("\n")}`);
