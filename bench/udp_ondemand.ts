/**
 * On-demand UDP throughput with `--interval 0`: packets/s and MB/s that one lib/udp client
 * (`playSong` without `openOutput`, so nothing is decoded) receives from udp-server in a child
 * process, and its loss — versus a minimal Deno sender → minimal Deno receiver pair on the same
 * loopback (1232-byte datagrams, as fast as `send()` resolves, received/sent counted).
 *
 *   deno run -A bench/udp_ondemand.ts [--runs 3] [--minutes 10] [--flood-count 100000]
 *
 * The shipped songs are 100–2000 packets, too short for a stable rate, so two long songs are
 * made in a temp songs folder: a `--minutes` 44.1 kHz stereo WAV tone (sox; sent as pcm_s16le,
 * 1200-byte payloads) and 01-morning-arpeggio.mp3 looped to the same length (ffmpeg
 * `-stream_loop … -c copy`; whole MP3 frames, ~1040-byte payloads). The server is
 * `deno run -A cmd/udp_server.ts --port 0 --interval 0 --songs TMP --max-clients 4`. The bare
 * pair is bench/_bare_sender.ts `sink` and `flood`. Rates are received packets over the
 * first-to-last-packet time at the receiver. Best and median of `--runs` runs.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { EventLog } from "../lib/cli/event_log.ts";
import { playSong } from "../lib/udp/client.ts";
import type { ReceptionReport } from "../lib/udp/reception_stats.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const BARE = new URL("./_bare_sender.ts", import.meta.url).pathname;
const args = parseArgs(Deno.args, { string: ["runs", "minutes", "flood-count"] });
const runs = Number(args.runs ?? 3);
const minutes = Number(args.minutes ?? 10);
const floodCount = Number(args["flood-count"] ?? 100_000);
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const progress = (line: string) => Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));

async function run(cmd: string, argv: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, { args: argv, stdout: "null", stderr: "piped" }).output();
  if (!r.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(r.stderr)}`);
}

/** Reads a child's stream line by line, waiting for a line that matches. */
async function waitLine(
  stream: ReadableStream<Uint8Array>,
  pred: (line: string) => boolean,
  ms: number,
): Promise<{ line: string; rest: Promise<void> }> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const deadline = setTimeout(() => reader.cancel().catch(() => {}), ms);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("stream ended before the expected line");
    buf += dec.decode(value, { stream: true });
    const lines = buf.split("\n");
    buf = lines.pop()!;
    const hit = lines.find(pred);
    if (hit !== undefined) {
      clearTimeout(deadline);
      // Keep draining so the child never blocks on a full pipe.
      const rest = (async () => {
        try {
          while (!(await reader.read()).done) { /* drain */ }
        } catch { /* cancelled */ }
      })();
      return { line: hit, rest };
    }
  }
}

function cpuTicks(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Row {
  pps: number;
  mbs: number;
  received: number;
  expected: number;
  lost: number;
  seconds: number;
  senderCpuPct: number;
  receiverCpuPct: number;
}

async function ours(songsDir: string, song: string): Promise<Row> {
  const server = new Deno.Command("deno", {
    args: [
      "run",
      "-A",
      "cmd/udp_server.ts",
      "--port",
      "0",
      "--interval",
      "0",
      "--songs",
      songsDir,
      "--max-clients",
      "4",
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const { line } = await waitLine(server.stderr, (l) => l.includes("listening on"), 30_000);
    const port = Number(/:(\d+) /.exec(line)?.[1]);
    // Warm the server's packetizer cache for this song (a first request cuts the file).
    const warm = new AbortController();
    await playSong({ hostname: "127.0.0.1", port }, song, {
      signal: warm.signal,
      log: EventLog.none(),
      timeoutMs: 20_000,
      maxSeconds: 0.5,
    }).catch(() => {});
    const s0 = cpuTicks(server.pid), c0 = cpuTicks("self");
    const t0 = performance.now();
    const report: ReceptionReport = await playSong({ hostname: "127.0.0.1", port }, song, {
      signal: new AbortController().signal,
      log: EventLog.none(),
      timeoutMs: 10_000,
    });
    const wall = (performance.now() - t0) / 1000;
    const s1 = cpuTicks(server.pid), c1 = cpuTicks("self");
    return {
      pps: report.received / report.durationS,
      mbs: report.bytes / report.durationS / 1e6,
      received: report.received,
      expected: report.expected,
      lost: report.lost,
      seconds: report.durationS,
      senderCpuPct: (100 * (s1 - s0)) / wall,
      receiverCpuPct: (100 * (c1 - c0)) / wall,
    };
  } finally {
    server.kill("SIGTERM");
    const t = setTimeout(() => server.kill("SIGKILL"), 5000);
    await server.status;
    clearTimeout(t);
  }
}

async function bare(count: number): Promise<Row> {
  const sink = new Deno.Command("deno", {
    args: ["run", "-A", BARE, "sink", "--idle-ms", "1000", "--seconds", "120"],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = sink.stdout.pipeThrough(new TextDecoderStream());
  const reader = lines.getReader();
  let buf = "";
  const nextJson = async () => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return JSON.parse(l);
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("sink ended early");
      buf += value;
    }
  };
  const { port } = await nextJson();
  const c0 = cpuTicks(sink.pid);
  const t0 = performance.now();
  const flood = await new Deno.Command("deno", {
    args: ["run", "-A", BARE, "flood", "--port", String(port), "--count", String(count)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!flood.success) throw new Error("flood sender failed");
  const sent = JSON.parse(new TextDecoder().decode(flood.stdout).trim());
  const got = await nextJson();
  const c1 = cpuTicks(sink.pid);
  const wall = (performance.now() - t0) / 1000;
  await sink.status;
  return {
    pps: got.received / got.seconds,
    mbs: got.bytes / got.seconds / 1e6,
    received: got.received,
    expected: sent.sent,
    lost: sent.sent - got.received,
    seconds: got.seconds,
    senderCpuPct: NaN, // the flood process exits before it could be sampled
    receiverCpuPct: (100 * (c1 - c0)) / wall,
  };
}

function pick(rows: Row[]): { best: Row; median: Row } {
  const sorted = [...rows].sort((a, b) => a.pps - b.pps);
  return { best: sorted[sorted.length - 1]!, median: sorted[Math.floor(sorted.length / 2)]! };
}

const dir = await Deno.makeTempDir({ prefix: "soundsock-ondemand-" });
try {
  progress(`making ${minutes}-minute songs in ${dir}…`);
  const seconds = minutes * 60;
  await run("sox", [
    "-n",
    "-r",
    "44100",
    "-c",
    "2",
    "-b",
    "16",
    `${dir}/long-tone.wav`,
    "synth",
    String(seconds),
    "sine",
    "440",
    "gain",
    "-6",
  ]);
  const loops = Math.max(0, Math.ceil(seconds / 23.4) - 1);
  await run("ffmpeg", [
    "-v",
    "error",
    "-stream_loop",
    String(loops),
    "-i",
    `${ROOT}songs/01-morning-arpeggio.mp3`,
    "-c",
    "copy",
    `${dir}/long-arpeggio.mp3`,
  ]);

  const results: { name: string; rows: Row[] }[] = [];
  for (const song of ["long-tone.wav", "long-arpeggio.mp3"]) {
    const rows: Row[] = [];
    for (let r = 0; r < runs; r++) {
      progress(`udp-server --interval 0, ${song}, run ${r + 1}/${runs}…`);
      rows.push(await ours(dir, song));
    }
    results.push({ name: `udp-server → lib/udp playSong: ${song}`, rows });
  }
  const bareRows: Row[] = [];
  for (let r = 0; r < runs; r++) {
    progress(`bare flood → sink, ${floodCount} datagrams, run ${r + 1}/${runs}…`);
    bareRows.push(await bare(floodCount));
  }
  results.push({
    name: "bare Deno sender → bare Deno receiver (1232 B, no flow control)",
    rows: bareRows,
  });

  const bareMedian = pick(bareRows).median;
  out(
    `Reproduce: deno run -A bench/udp_ondemand.ts --runs ${runs} --minutes ${minutes} ` +
      `--flood-count ${floodCount}`,
  );
  out("");
  out(
    "| path | runs | pkt/s median (best) | MB/s median | received / expected (median run) | lost | " +
      "loss % | sender CPU % | receiver CPU % | pkt/s ÷ bare median |",
  );
  out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const { name, rows } of results) {
    const { best, median } = pick(rows);
    const lostAll = rows.reduce((n, r) => n + r.lost, 0);
    const expAll = rows.reduce((n, r) => n + r.expected, 0);
    out(
      `| ${name} | ${rows.length} | ${median.pps.toFixed(0)} (${best.pps.toFixed(0)}) | ` +
        `${
          median.mbs.toFixed(1)
        } | ${median.received} / ${median.expected} | ${lostAll} (all runs) | ` +
        `${((100 * lostAll) / expAll).toFixed(3)} | ` +
        `${Number.isFinite(median.senderCpuPct) ? median.senderCpuPct.toFixed(0) : "—"} | ` +
        `${median.receiverCpuPct.toFixed(0)} | ${(median.pps / bareMedian.pps).toFixed(2)}× |`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
