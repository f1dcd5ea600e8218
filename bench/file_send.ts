/**
 * file-send over loopback vs the C pipeline the issue names, in the same run, same file:
 *
 *   receiver: socat -u OPENSSL-LISTEN:PORT,cert=…,verify=0 - | tee FILE | openssl dgst -sha256
 *   sender:   socat -u FILE:SRC OPENSSL:127.0.0.1:PORT,verify=0
 *
 * against `file-send receive --once --yes --json` + `file-send send SRC 127.0.0.1:PORT`
 * (both sides hash, the receiver writes FILE.part, fsyncs and renames). Each run times the
 * pipeline and file-send back to back (the machine may be shared: compare within a run);
 * the report gives each run, then the median and range. `sync` runs before each side, so
 * neither pays for the other's write-back, and outputs are deleted only after the last run. Also: the time from spawning
 * `receive` to its `Code:` line, next to an empty `deno run` as the floor (same runs), and
 * the resume cost — the sender is SIGKILLed half-way and sent again; that second run's time
 * and the bytes each side read from disk are compared with sending half the file.
 * Not a `deno bench` file: a report.
 *
 *   deno run -A bench/file_send.ts [--size-mib 1024] [--runs 3] [--out-dir /dev/shm]
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { join } from "@std/path";
import { createEphemeralCert } from "../lib/transfer/cert.ts";

function say(t: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(t + "\n"));
}

const args = parseArgs(Deno.args, { string: ["size-mib", "runs", "out-dir"] });
const sizeMiB = Number(args["size-mib"] ?? 1024);
const runs = Number(args.runs ?? 3);
const size = sizeMiB * 1024 * 1024;
const root = new URL("../", import.meta.url).pathname;
const tmp = await Deno.makeTempDir({ prefix: "file-send-bench-" });
const src = join(tmp, "src.bin");
// Where both the pipeline's tee and file-send write (e.g. /dev/shm: no disk under either,
// so that file-send's fsyncs cost nothing, as the pipeline's missing ones do).
const out = args["out-dir"] ? await Deno.makeTempDir({ dir: args["out-dir"] }) : tmp;

async function writeRandom(path: string, bytes: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(16 << 20);
  for (let i = 0; i < block.length; i += 65536) {
    crypto.getRandomValues(block.subarray(i, i + 65536));
  }
  for (let at = 0, n = 0; at < bytes; at += block.length, n++) {
    block[0] = n & 0xff;
    const part = block.subarray(0, Math.min(block.length, bytes - at));
    let w = 0;
    while (w < part.length) w += await f.write(part.subarray(w));
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

async function waitForPort(port: number): Promise<void> {
  // socat accepts one connection: wait until the port is bound by looking at /proc/net/tcp.
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (let i = 0; i < 200; i++) {
    const table = await Deno.readTextFile("/proc/net/tcp");
    if (table.includes(`:${hex} 00000000:0000 0A`)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`port ${port} never listened`);
}

async function socatRun(pem: string, out: string): Promise<{ seconds: number; sha: string }> {
  const port = freePort();
  const receiver = new Deno.Command("bash", {
    args: [
      "-c",
      `socat -u OPENSSL-LISTEN:${port},reuseaddr,bind=127.0.0.1,cert=${pem},verify=0 - | tee ${out} | openssl dgst -sha256`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  await waitForPort(port);
  const t0 = performance.now();
  const sender = await new Deno.Command("socat", {
    args: ["-u", `FILE:${src}`, `OPENSSL:127.0.0.1:${port},verify=0`],
    stderr: "inherit",
  }).output();
  const result = await receiver.output();
  const seconds = (performance.now() - t0) / 1000;
  if (!sender.success || !result.success) throw new Error("socat pipeline failed");
  const sha = /= ([0-9a-f]{64})/.exec(new TextDecoder().decode(result.stdout))?.[1] ?? "?";
  return { seconds, sha };
}

function fileSend(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(root, "cmd/file_send.ts"), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Starts a receiver; resolves once its code is on stdout, with the time that took. */
async function startReceive(dir: string, extra: string[]) {
  const t0 = performance.now();
  const child = fileSend(["receive", "--dir", dir, "--host", "127.0.0.1", "--port", "0", ...extra]);
  // With --json the address and code go to stderr (stdout carries only the summary).
  const json = extra.includes("--json");
  const reader = (json ? child.stderr : child.stdout).getReader();
  const other = (json ? child.stdout : child.stderr).getReader();
  let otherText = "";
  const otherDone = (async () => {
    for (;;) {
      const r = await other.read();
      if (r.done) return otherText;
      otherText += new TextDecoder().decode(r.value);
    }
  })();
  let text = "";
  let toCode: number | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`receive ended: ${text}`);
    text += new TextDecoder().decode(value);
    const port = /Listening on [^:]+:(\d+)/.exec(text)?.[1];
    const code = /Code: (\S+)/.exec(text)?.[1];
    if (code && toCode === undefined) toCode = performance.now() - t0;
    if (port && code) {
      const rest = (async () => {
        for (;;) {
          const r = await reader.read();
          if (r.done) break;
          text += new TextDecoder().decode(r.value);
        }
        // The JSON summary (stdout) when --json, else the stdout text.
        return json ? await otherDone : text;
      })();
      return { child, port: Number(port), code, toCodeMs: toCode!, rest };
    }
  }
}

async function fileSendRun(
  dir: string,
  file = src,
): Promise<{ seconds: number; sha: string; toCodeMs: number }> {
  const r = await startReceive(dir, ["--once", "--yes", "--json"]);
  const t0 = performance.now();
  const sender = await fileSend(["send", file, `127.0.0.1:${r.port}`, "--code", r.code, "--json"])
    .output();
  const status = await r.child.status;
  const seconds = (performance.now() - t0) / 1000;
  const out = await r.rest;
  if (!sender.success || !status.success) {
    throw new Error(`file-send failed: ${new TextDecoder().decode(sender.stderr)}`);
  }
  const summary = JSON.parse(out.slice(out.indexOf("{")));
  return { seconds, sha: summary.files[0].sha256, toCodeMs: r.toCodeMs };
}

say(`file-send benchmark: ${sizeMiB} MiB over loopback, ${runs} run(s) each, writing into ${out}`);
await writeRandom(src, size);
const { key, cert } = await createEphemeralCert();
const pem = join(tmp, "both.pem");
await Deno.writeTextFile(pem, cert + key);
const mib = (s: number) => (sizeMiB / s).toFixed(0);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const range = (a: number[], f: (x: number) => string) =>
  `median ${f(median(a))} (${f(Math.min(...a))}–${f(Math.max(...a))})`;

/** Spawn → first stdout byte of an empty program: Deno's own start-up here, now. */
async function emptyRunMs(): Promise<number> {
  const file = join(tmp, "empty.ts");
  await Deno.writeTextFile(file, 'console.log("x");\n');
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read();
  const ms = performance.now() - t0;
  reader.releaseLock();
  await child.stdout.cancel();
  await child.status;
  return ms;
}

/**
 * `sync(1)` before each timed side: the write-back of what the previous side wrote (and the
 * discards of what it deleted) would otherwise land in the next side's time.
 */
async function settleDisk(): Promise<void> {
  await new Deno.Command("sync").output();
}

/** Outputs of the timed runs, deleted after the last: a delete (ext4 `discard` on this VM's
 * disk) stalls whoever writes next. */
const written: string[] = [];
const pipe: number[] = [];
const ours: number[] = [];
const ratios: number[] = [];
const toCode: number[] = [];
const empty: number[] = [];
for (let run = 1; run <= runs; run++) {
  await settleDisk();
  const c = await socatRun(pem, join(out, `socat-${run}.out`));
  await settleDisk();
  const dir = await Deno.makeTempDir({ dir: out });
  const f = await fileSendRun(dir);
  written.push(join(out, `socat-${run}.out`), dir);
  if (f.sha !== c.sha) throw new Error(`hashes differ: ${f.sha} vs ${c.sha}`);
  const e = await emptyRunMs();
  pipe.push(sizeMiB / c.seconds);
  ours.push(sizeMiB / f.seconds);
  ratios.push(c.seconds / f.seconds);
  toCode.push(f.toCodeMs);
  empty.push(e);
  say(
    `run ${run}: socat|tee|openssl ${c.seconds.toFixed(2)} s (${mib(c.seconds)} MiB/s), ` +
      `file-send ${f.seconds.toFixed(2)} s (${mib(f.seconds)} MiB/s) = ` +
      `${(c.seconds / f.seconds).toFixed(2)}× the pipeline; receive → code ` +
      `${f.toCodeMs.toFixed(0)} ms (empty deno run ${e.toFixed(0)} ms)`,
  );
}
for (const path of written) await Deno.remove(path, { recursive: true });
const n0 = (x: number) => x.toFixed(0);
say(`pipeline: ${range(pipe, n0)} MiB/s; file-send: ${range(ours, n0)} MiB/s`);
say(`file-send / pipeline, same run: ${range(ratios, (x) => `${x.toFixed(2)}×`)}`);
say(
  `receive → code shown: ${range(toCode, (x) => `${n0(x)} ms`)}; empty deno run: ` +
    `${range(empty, (x) => `${n0(x)} ms`)}`,
);

// Resume: kill the sender half-way (by time), send again; compare with sending the half.
{
  const dir = await Deno.makeTempDir({ dir: tmp });
  const r = await startReceive(dir, ["--yes", "--json"]);
  const full = fileSend(["send", src, `127.0.0.1:${r.port}`, "--code", r.code]);
  const partPath = join(dir, "src.bin.part.journal");
  // Kill once the journal lists half the chunks.
  const half = Math.ceil(size / (4 << 20) / 2);
  for (;;) {
    const lines = await Deno.readTextFile(partPath).then(
      (t) => t.split("\n").filter((l) => l.startsWith("C ")).length,
      () => 0,
    );
    if (lines >= half) break;
    await new Promise((res) => setTimeout(res, 5));
  }
  full.kill("SIGKILL");
  await full.status;
  await full.stdout.cancel();
  await full.stderr.cancel();
  const t0 = performance.now();
  const again = await fileSend(["send", src, `127.0.0.1:${r.port}`, "--code", r.code, "--json"])
    .output();
  const resumeSeconds = (performance.now() - t0) / 1000;
  await r.child.status; // a completed transfer ends it
  const received = await r.rest;
  const readReceiver = JSON.parse(received.slice(received.indexOf("{"))).bytesRead as number;
  const second = JSON.parse(new TextDecoder().decode(again.stdout));
  const sent = second.bytes as number;
  const readSender = second.bytesRead as number;
  await Deno.remove(dir, { recursive: true });
  const halfFile = join(tmp, "half.bin");
  await writeRandom(halfFile, Math.round(size / 2));
  const dir2 = await Deno.makeTempDir({ dir: tmp });
  const h = await fileSendRun(dir2, halfFile);
  say(
    `resume: second send ${resumeSeconds.toFixed(2)} s for ${(sent / 2 ** 20).toFixed(0)} MiB ` +
      `(${((sent / size) * 100).toFixed(0)} % of the file) vs ${h.seconds.toFixed(2)} s to send ` +
      `half the file fresh = ${(resumeSeconds / h.seconds).toFixed(2)}×; the sender read ` +
      `${(readSender / 2 ** 20).toFixed(0)} MiB of its file (${
        ((readSender / size) * 100).toFixed(0)
      } %), the receiver ${(readReceiver / 2 ** 20).toFixed(0)} MiB`,
  );
}
await Deno.remove(tmp, { recursive: true });
if (out !== tmp) await Deno.remove(out, { recursive: true });
