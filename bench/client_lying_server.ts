/**
 * Client peak RSS (and what it wrote) against a lying server vs an honest one. Each scenario
 * spawns the real client command and samples its /proc VmHWM (peak resident set) until it
 * exits; the servers run in this process.
 *
 *   deno run -A bench/client_lying_server.ts [--seconds 10] [--client-root DIR]
 *
 * Scenarios:
 * - `flac`: `tls-client play 1 --output x.wav` of a FLAC. Honest: songs/06-harbour-chorale.flac
 *   announced as it is. Lying: 557 KB of FLAC that decodes to 1 h of 44.1 kHz stereo silence
 *   (635 MB of PCM), announced as 1 s.
 * - `radio`: `tls-client radio --output x.wav` for `--seconds`. Honest: 8 kHz mono PCM paced
 *   in real time. Lying: the same as fast as TCP takes it.
 * - `udp`: `udp-client --song 6 --output x.wav` through a relay in front of a real udp-server.
 *   Honest: the relay forwards. Lying: it also forges DATA with timestamp 2^52 µs after the last
 *   packet (a "gap" of 142 years to conceal).
 *
 * `--client-root DIR` runs the client commands from another checkout (e.g. a worktree of the
 * commit before the fixes) against the same servers, for before/after figures.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { join } from "@std/path";
import { EventLog } from "../lib/cli/event_log.ts";
import { sha256Hex } from "../lib/hash/sha256.ts";
import { probeSong } from "../lib/audio/decode.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { createCertificates } from "../lib/tls/certs.ts";
import { UdpServer } from "../lib/udp/server.ts";
import { decodeDatagram, encodeFrame, FrameType } from "../lib/wire/frame.ts";
import { encodeControl, readRequest, readStreamInfo, type Request } from "../lib/wire/messages.ts";
import { readFrames } from "../lib/wire/stream_decoder.ts";

const args = parseArgs(Deno.args, { string: ["seconds", "client-root"] });
const SECONDS = Number(args.seconds ?? 10);
const ROOT = args["client-root"] ?? new URL("..", import.meta.url).pathname;
const SONGS = new URL("../songs/", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "soundsock-bench-lying-" });
const certs = await createCertificates(join(work, "certs"));

type Responder = (req: Request) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** A fake tls-server on port 0 answering each REQUEST with `respond`'s frames. */
function fakeTlsServer(respond: Responder) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: Deno.readTextFileSync(certs.serverCert),
    key: Deno.readTextFileSync(certs.serverKey),
  });
  const sent = { bytes: 0 };
  (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          for await (const frame of readFrames(conn, { maxPayload: 65536 })) {
            if (frame.type !== FrameType.REQUEST) continue;
            for await (const b of respond(readRequest(frame))) {
              for (let at = 0; at < b.length;) at += await conn.write(b.subarray(at));
              sent.bytes += b.length;
            }
          }
        } catch { /* client left */ }
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, sent, close: () => listener.close() };
}

function getAnswer(bytes: Uint8Array, info: Record<string, unknown>): Uint8Array[] {
  const out = [encodeControl(FrameType.STREAM_INFO, {
    packets: Math.ceil(bytes.length / 65536),
    size: bytes.length,
    sha256: sha256Hex(bytes),
    offset: 0,
    ...info,
  })];
  for (let at = 0, seq = 0; at < bytes.length; at += 65536, seq++) {
    out.push(
      encodeFrame({ type: FrameType.DATA, sequence: seq, payload: bytes.subarray(at, at + 65536) }),
    );
  }
  out.push(encodeControl(FrameType.END, { packets: out.length - 1, bytes: bytes.length }));
  return out;
}

interface Run {
  code: number;
  peakRssMiB: number;
  outputBytes: number;
  seconds: number;
  stderr: string;
}

/** Spawns a client command, samples VmHWM every 20 ms, optionally SIGINTs it after `stopAfterS`. */
async function runClient(
  cmd: string,
  cmdArgs: string[],
  output: string,
  stopAfterS?: number,
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, cmd), ...cmdArgs],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const started = performance.now();
  let peak = 0;
  const sample = () => {
    try {
      const s = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0));
    } catch { /* exited */ }
  };
  const timer = setInterval(sample, 20);
  const stop = stopAfterS === undefined ? undefined : setTimeout(() => {
    sample();
    try {
      child.kill("SIGINT");
    } catch { /* gone */ }
  }, stopAfterS * 1000);
  const killer = setTimeout(() => child.kill("SIGKILL"), (stopAfterS ?? 120) * 1000 + 30_000);
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  const status = await child.status;
  clearInterval(timer);
  clearTimeout(stop);
  clearTimeout(killer);
  let outputBytes = 0;
  try {
    outputBytes = (await Deno.stat(output)).size;
  } catch { /* none */ }
  await Deno.remove(output).catch(() => {});
  return {
    code: status.code,
    peakRssMiB: Math.round(peak / 102.4) / 10,
    outputBytes,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    stderr: stderr.trim().split("\n").filter((l) => l.startsWith("error")).join(" | "),
  };
}

const enc = new TextEncoder();
/** Progress on stderr; the table on stdout. */
const progress = (line: string) => Deno.stderr.writeSync(enc.encode(line + "\n"));
const print = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));

const rows: string[][] = [];
function report(scenario: string, kind: string, r: Run) {
  rows.push([
    scenario,
    kind,
    String(r.peakRssMiB),
    (r.outputBytes / 1048576).toFixed(1),
    String(r.seconds),
    String(r.code),
    r.stderr.slice(0, 90),
  ]);
  progress(`${scenario} ${kind}: ${JSON.stringify(r)}`);
}

const tlsArgs = (port: number) => ["--server", `localhost:${port}`, "--ca", certs.caCert];

// --- flac -------------------------------------------------------------------------------------
{
  const bombPath = join(work, "bomb.flac");
  const made = await new Deno.Command("ffmpeg", {
    args: [
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      "anullsrc=r=44100:cl=stereo",
      "-t",
      "3600",
      "-c:a",
      "flac",
      bombPath,
    ],
  }).output();
  if (!made.success) throw new Error(new TextDecoder().decode(made.stderr));
  const bomb = await Deno.readFile(bombPath);
  const honestPath = join(SONGS, "06-harbour-chorale.flac");
  const honest = await Deno.readFile(honestPath);
  const hp = await probeSong(honestPath);
  for (
    const [kind, bytes, info] of [
      ["honest", honest, {
        title: "06-harbour-chorale.flac",
        durationMs: hp.durationMs,
        sampleRate: hp.sampleRate,
        channels: hp.channels,
      }],
      ["lying", bomb, { title: "bomb.flac", durationMs: 1000, sampleRate: 44100, channels: 2 }],
    ] as const
  ) {
    const server = fakeTlsServer((req) =>
      req.op === "get" ? getAnswer(bytes, { codec: "flac", ...info }) : []
    );
    const out = join(work, "flac.wav");
    const r = await runClient("cmd/tls_client.ts", [
      "play",
      "1",
      "--output",
      out,
      ...tlsArgs(server.port),
    ], out);
    report(`flac (${Math.round(bytes.length / 1024)} KB)`, kind, r);
    server.close();
  }
}

// --- radio ------------------------------------------------------------------------------------
{
  const rate = 8000;
  const chunk = new Uint8Array(rate * 2 / 10); // 100 ms of 8 kHz mono
  for (const kind of ["honest", "lying"] as const) {
    const server = fakeTlsServer(async function* (req) {
      if (req.op !== "radio") return;
      yield encodeControl(FrameType.ACCEPT, { op: "radio", maxPayload: 1048544 });
      yield encodeControl(FrameType.NOW_PLAYING, {
        title: "x",
        durationMs: 1000,
        positionMs: 0,
        source: "random",
      });
      yield encodeControl(FrameType.STREAM_INFO, {
        title: "x",
        codec: "pcm_s16le",
        sampleRate: rate,
        channels: 1,
        durationMs: 1000,
        live: true,
      });
      const t0 = performance.now();
      for (let seq = 0;; seq++) {
        if (kind === "honest") {
          const due = t0 + seq * 100 - 400; // a 400 ms join burst, then real time
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        yield encodeFrame({
          type: FrameType.DATA,
          streamId: 1,
          sequence: seq,
          timestamp: seq * 100_000,
          flags: seq ? 0 : 1,
          payload: chunk,
        });
      }
    });
    const out = join(work, "radio.wav");
    const r = await runClient(
      "cmd/tls_client.ts",
      ["radio", "--output", out, ...tlsArgs(server.port)],
      out,
      SECONDS,
    );
    report(`radio ${SECONDS} s`, kind, {
      ...r,
      stderr: r.stderr || `server sent ${(server.sent.bytes / 1048576).toFixed(1)} MB`,
    });
    server.close();
  }
}

// --- udp --------------------------------------------------------------------------------------
{
  const catalog = await SongCatalog.open(SONGS);
  const controller = new AbortController();
  const server = await UdpServer.start({
    catalog,
    hostname: "127.0.0.1",
    port: 0,
    log: EventLog.none(),
    signal: controller.signal,
    intervalMs: 0,
  });
  for (const kind of ["honest", "lying"] as const) {
    const front = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const back = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    let client: Deno.Addr | undefined;
    let packets = Infinity;
    (async () => {
      for (;;) {
        const [d, from] = await front.receive();
        client = from;
        await back.send(d, { transport: "udp", ...server.address });
      }
    })().catch(() => {});
    (async () => {
      for (;;) {
        const [d] = await back.receive();
        if (!client) continue;
        await front.send(d, client);
        if (kind !== "lying") continue;
        try {
          const f = decodeDatagram(d, { maxPayload: 65000 });
          if (f.type === FrameType.STREAM_INFO) packets = readStreamInfo(f).packets ?? Infinity;
          if (f.type === FrameType.DATA && f.sequence === packets - 1) {
            await front.send(
              encodeFrame({
                type: FrameType.DATA,
                streamId: f.streamId,
                sequence: f.sequence + 5,
                timestamp: 2 ** 52,
                payload: new Uint8Array(1200),
              }),
              client,
            );
          }
        } catch { /* not a frame */ }
      }
    })().catch(() => {});
    const addr = front.addr as Deno.NetAddr;
    const out = join(work, "udp.wav");
    const r = await runClient("cmd/udp_client.ts", [
      `127.0.0.1:${addr.port}`,
      "--song",
      "6",
      "--output",
      out,
    ], out);
    report("udp huge timestamp", kind, r);
    front.close();
    back.close();
  }
  controller.abort();
  await server.close?.();
}

print(
  "| scenario | server | client peak RSS (MiB) | output (MiB) | seconds | exit | error |",
);
print("| --- | --- | ---: | ---: | ---: | ---: | --- |");
for (const r of rows) print(`| ${r.join(" | ")} |`);
await Deno.remove(work, { recursive: true }).catch(() => {});
Deno.exit(0);
