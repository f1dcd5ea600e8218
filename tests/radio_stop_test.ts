/**
 * Issue #9 D2: `udp-client --radio --seconds N` and `tls-client radio --max-seconds N` stop on
 * wall time whatever the output — the null device, a WAV file, a PulseAudio device that plays
 * nothing (a suspended sink: the device's ring fills and never drains) — and the listener's
 * statistics report the device's own underruns (`device_underruns`).
 *
 * The time bound is the brief's: the client exits within N + 2 s of its stream starting (its
 * "Playing"/"Now playing" line); without the fix a stalled device kept it running for ever.
 */
import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { havePulse, startPulse } from "./_pulse.ts";
import { startTestServer } from "./_tls_helpers.ts";
import { spawnUdpServer, startServer as startUdpServerInProcess } from "./_udp_helpers.ts";
import { listenRadio, type PcmOutput } from "../lib/udp/client.ts";
import { EventLog } from "../lib/cli/event_log.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SONGS = join(ROOT, "songs");
const opts = { sanitizeOps: false, sanitizeResources: false };
/** The brief's bound: N seconds plus this much. */
const SLACK_MS = 2000;

/** A command file running as a child; records when a stderr line first matched `started`. */
function spawnCmd(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; started?: RegExp } = {},
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/${cmd}`, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  // Hard stop: a client that never ends fails the test instead of hanging it.
  const kill = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 30_000);
  let stderr = "";
  let startedAt: number | undefined;
  const started = options.started ?? /^(Playing |Now playing:)/m;
  const errDone = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr += text;
      if (startedAt === undefined && started.test(stderr)) startedAt = performance.now();
    }
  })();
  const outDone = new Response(child.stdout).text();
  return {
    child,
    get stderr() {
      return stderr;
    },
    async result() {
      const status = await child.status;
      const exitedAt = performance.now();
      clearTimeout(kill);
      await errDone;
      const stdout = await outDone;
      return { code: status.code, signal: status.signal, stdout, stderr, startedAt, exitedAt };
    },
  };
}

/** Asserts a run stopped by its limit on time: exit 0, within N s + SLACK_MS of starting. */
function assertStoppedOnTime(
  r: Awaited<ReturnType<ReturnType<typeof spawnCmd>["result"]>>,
  seconds: number,
): void {
  assertEquals([r.code, r.signal], [0, null], r.stderr);
  assert(r.startedAt !== undefined, `the stream never started:\n${r.stderr}`);
  const ms = r.exitedAt - r.startedAt!;
  assert(ms <= seconds * 1000 + SLACK_MS, `ran ${Math.round(ms)} ms after starting:\n${r.stderr}`);
}

const udpArgs = (port: number, seconds: number, more: string[]) => [
  `127.0.0.1:${port}`,
  "--radio",
  "--seconds",
  String(seconds),
  "--stats-json",
  ...more,
];

Deno.test({
  name:
    "udp-client --radio --seconds 3 stops on time on the null device and reports device_underruns",
  ...opts,
  fn: async () => {
    await using server = await spawnUdpServer();
    const run = spawnCmd("udp_client.ts", udpArgs(server.port, 3, ["--audio-backend", "null"]));
    const r = await run.result();
    assertStoppedOnTime(r, 3);
    const stats = JSON.parse(r.stdout);
    assertEquals(stats.ended_by, "seconds");
    assertEquals(typeof stats.device_underruns, "number");
    assert(/^ {2}device_underruns +\d+$/m.test(r.stderr), r.stderr);
  },
});

Deno.test({
  name: "udp-client --radio --seconds 3 --output x.wav stops on time with about 3 s of audio",
  ...opts,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await using server = await spawnUdpServer();
      const wav = join(dir, "x.wav");
      const r = await spawnCmd("udp_client.ts", udpArgs(server.port, 3, ["--output", wav]))
        .result();
      assertStoppedOnTime(r, 3);
      assertEquals(JSON.parse(r.stdout).ended_by, "seconds");
      assertEquals(JSON.parse(r.stdout).device_underruns, 0); // a file has no device
      // 48 kHz stereo s16le: the radio's media clock leads the wall clock by at most 2 s.
      const seconds = ((await Deno.stat(wav)).size - 44) / (48_000 * 4);
      assert(seconds > 1 && seconds <= 3 + 2.5, `${seconds} s in the WAV`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "udp-client counts device underruns when the stream stalls (server stopped 1.5 s)",
  ...opts,
  fn: async () => {
    await using server = await spawnUdpServer();
    const run = spawnCmd(
      "udp_client.ts",
      udpArgs(server.port, 5, ["--audio-backend", "null", "--timeout", "10"]),
      { started: /^Output: /m },
    );
    // Once the device plays, freeze the server: the jitter buffer and then the device's ring
    // run dry, and the device's callback finds the ring short.
    while (!/^Output: /m.test(run.stderr)) {
      assert(run.stderr.length < 100_000);
      await new Promise((r) => setTimeout(r, 20));
      if (/^error/m.test(run.stderr)) break;
    }
    await new Promise((r) => setTimeout(r, 1000));
    Deno.kill(server.pid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 1500));
    Deno.kill(server.pid, "SIGCONT");
    const r = await run.result();
    assertEquals(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stdout);
    assertEquals(stats.ended_by, "seconds");
    assert(stats.device_underruns > 0, `device_underruns ${stats.device_underruns}\n${r.stderr}`);
  },
});

Deno.test({
  name: "listenRadio: maxSeconds stops although the output stalls and never drains",
  ...opts,
  fn: async () => {
    await using server = await startUdpServerInProcess();
    // A device that takes 0.5 s of audio and then plays nothing (like a suspended sink): a
    // write waits for room until the signal the playout passes ends it, as Player.write does;
    // drain never resolves.
    let accepted = 0;
    const stalled: PcmOutput = {
      write(pcm, options) {
        if (accepted < 24_000) {
          accepted += pcm.length / 2;
          return Promise.resolve();
        }
        return new Promise((_, reject) => {
          const signal = options?.signal;
          if (signal?.aborted) reject(signal.reason);
          signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      },
      drain: () => new Promise(() => {}),
      player: { underruns: 7 },
    };
    const done = listenRadio(server.address, {
      signal: new AbortController().signal,
      log: EventLog.none(),
      maxSeconds: 2,
      openOutput: () => Promise.resolve(stalled),
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const report = await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("listenRadio did not stop")), 2000 + 5000);
      }),
    ]).finally(() => clearTimeout(timer));
    assertEquals(report.ending, "seconds");
    assertEquals(report.deviceUnderruns, 7); // read from the output's device before closing
    assert(accepted >= 24_000, "the stream played before it stalled");
  },
});

const tlsArgs = (t: { port: number; certs: { caCert: string } }, seconds: number) => [
  "radio",
  "--server",
  `localhost:${t.port}`,
  "--ca",
  t.certs.caCert,
  "--max-seconds",
  String(seconds),
];

Deno.test({
  name: "tls-client radio --max-seconds 3 stops on time (null device, and WAV file)",
  ...opts,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await using t = await startTestServer(SONGS);
      const r = await spawnCmd("tls_client.ts", [...tlsArgs(t, 3), "--audio-backend", "null"])
        .result();
      assertStoppedOnTime(r, 3);
      assert(/^Radio stopped\. device_underruns: \d+$/m.test(r.stderr), r.stderr);

      const wav = join(dir, "x.wav");
      const w = await spawnCmd("tls_client.ts", [...tlsArgs(t, 3), "--output", wav]).result();
      assertStoppedOnTime(w, 3);
      const seconds = ((await Deno.stat(wav)).size - 44) / (48_000 * 4);
      assert(seconds > 1 && seconds <= 3.01, `${seconds} s in the WAV`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "PulseAudio device that plays nothing (suspended sink): udp and tls radio stop on time",
  ...opts,
  ignore: !havePulse(),
  fn: async () => {
    await using pulse = await startPulse();
    // The sink stops consuming: the client's ring fills, writes wait, drain would never end.
    await pulse.pactl("suspend-sink", "speaker", "1");
    const env = pulse.env;
    await using server = await spawnUdpServer();
    const u = await spawnCmd(
      "udp_client.ts",
      udpArgs(server.port, 3, ["--audio-backend", "pulse"]),
      { env },
    ).result();
    assertStoppedOnTime(u, 3);
    assertEquals(JSON.parse(u.stdout).ended_by, "seconds");
    assert(/^Output: pulse: /m.test(u.stderr), u.stderr);

    await using t = await startTestServer(SONGS);
    const r = await spawnCmd("tls_client.ts", [...tlsArgs(t, 3), "--audio-backend", "pulse"], {
      env,
    }).result();
    assertStoppedOnTime(r, 3);
    assert(/^Output: pulse: /m.test(r.stderr), r.stderr);
  },
});
