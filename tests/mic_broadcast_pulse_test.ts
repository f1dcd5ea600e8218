/**
 * mic-broadcast on a real device path, headless (issue #11): a PulseAudio virtual microphone
 * fed a 440 Hz tone (tests/_pulse.ts) → mic-broadcast capturing it through miniaudio → a
 * listener playing through miniaudio to a PulseAudio null sink → recorded with parec. One
 * helper ({@linkcode devicePath}), three cases: udp-client --radio, tls-client radio over TLS,
 * and udp-client behind an impairment relay that drops a seeded set of DATA packets (the gaps
 * Opus PLC fills are exactly those: as many concealed frames as dropped packets, the tone kept).
 * Runs wherever `pulseaudio` is installed; in CI (CI=true) a missing daemon is a failure.
 */
import { assert, assertAlmostEquals, assertEquals, assertGreater } from "@std/assert";
import { WavWriter } from "../lib/audio/mod.ts";
import { FrameType } from "../lib/wire/frame.ts";
import { havePulse, type Pulse, retryIfRecorderExited, startPulse } from "./_pulse.ts";
import { spawnBroadcast } from "./_mic_helpers.ts";
import { analyseTone, sine } from "./_signal.ts";
import { testCerts } from "./_tls_helpers.ts";
import { startLyingRelay } from "./_udp_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const ignore = !havePulse() && Deno.env.get("CI") !== "true";
const RATE = 48_000;
const opts = { ignore, sanitizeResources: false, sanitizeOps: false };

/** Windows of 10 ms below this RMS are a gap (the tone's is ~11585). */
const GAP_RMS = 9000;

/** The listener the test runs, and how it reaches mic-broadcast. */
type Listener =
  | { kind: "udp"; drop?: ReadonlySet<number> }
  | { kind: "tls" };

interface DeviceRun {
  /** What the speaker played (parec of speaker.monitor). */
  recorded: Int16Array;
  /** What was fed to the microphone (parec of micfeed.monitor). */
  fed: Int16Array;
  /** The listener's --stats-json. */
  stats: Record<string, number>;
  /** The listener's --log events. */
  events: Record<string, unknown>[];
  /** The DATA sequence numbers the relay dropped (udp with `drop`). */
  dropped: number[];
  /** For failure messages: the stats and stderr of both processes. */
  said: string;
  micSaid: string;
}

/**
 * Feeds the tone into the microphone, runs mic-broadcast and the listener for 4 s to the
 * speaker, and returns the recordings and statistics. `drop` are DATA packet indexes counted
 * from the first DATA the relay forwarded (0 = that one).
 */
async function devicePath(pulse: Pulse, listener: Listener): Promise<DeviceRun> {
  const wav = `${pulse.runtimeDir}/tone440.wav`;
  {
    await using w = await WavWriter.create(wav, { sampleRate: RATE, channels: 1 });
    await w.write(sine(440, 10, RATE, 1, 16384));
  }
  const certs = listener.kind === "tls" ? await testCerts() : undefined;
  // Children inherit PULSE_SERVER from Deno.env (startPulse set it).
  const mic = await spawnBroadcast([
    "--audio-backend",
    "pulse",
    "--device",
    "Mic",
    ...(certs
      ? ["--tls", "127.0.0.1:0", "--cert", certs.serverCert, "--key", certs.serverKey]
      : ["--udp", "127.0.0.1:0"]),
  ]);
  let relay: AsyncDisposable | undefined;
  try {
    const ready = mic.ready;
    let target = `127.0.0.1:${ready.udpPort}`;
    const dropped: number[] = [];
    if (listener.kind === "udp" && listener.drop) {
      const drop = listener.drop;
      let first: number | undefined;
      const r = startLyingRelay({ hostname: "127.0.0.1", port: ready.udpPort! }, (f, raw) => {
        if (f.type !== FrameType.DATA) return [raw];
        first ??= f.sequence;
        if (!drop.has((f.sequence - first) >>> 0)) return [raw];
        dropped.push(f.sequence);
        return [];
      });
      relay = r;
      target = `${r.address.hostname}:${r.address.port}`;
    }
    const feeding = pulse.playToMic(wav);
    feeding.catch(() => {}); // awaited below; the daemon's dispose ends it on a failure
    // What reached the microphone too: a gap there is the feed's (paplay's), not ours.
    const [rec, feedRec] = await Promise.all([
      pulse.recordSpeaker(RATE),
      pulse.recordSpeaker(RATE, "micfeed.monitor"),
    ]);
    await new Promise((r) => setTimeout(r, 500));
    const logFile = `${pulse.runtimeDir}/listener.log`;
    // A device test, not a latency one (bench/mic_latency.ts): a 300 ms buffer survives a
    // process stalled that long on a busy host, and its 100 ms device period (livePeriodMs)
    // a stalled audio thread.
    const play = ["--audio-backend", "pulse", "--device", "Speaker", "--buffer", "300"]
      .concat(["--seconds", "4", "--stats-json", "--log", logFile]);
    const client = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A"].concat(
        certs
          ? [`${ROOT}cmd/tls_client.ts`, "radio", "--server", `127.0.0.1:${ready.tlsPort}`]
            .concat(["--ca", certs.caCert])
          : [`${ROOT}cmd/udp_client.ts`, target, "--radio"],
        play,
      ),
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
      signal: AbortSignal.timeout(30_000),
    }).output();
    await new Promise((r) => setTimeout(r, 400)); // the tail through the monitor
    const recorded = await rec.stop();
    const fed = await feedRec.stop();
    const stderr = new TextDecoder().decode(client.stderr);
    assertEquals(client.code, 0, stderr);
    const stats = JSON.parse(new TextDecoder().decode(client.stdout).trim().split("\n").at(-1)!);
    const events = (await Deno.readTextFile(logFile)).trim().split("\n").map((l) => JSON.parse(l));
    const { code, stderr: micSaid } = await mic.stop();
    assertEquals(code, 0, micSaid);
    await feeding;
    return { recorded, fed, stats, events, dropped, said: JSON.stringify(stats), micSaid };
  } finally {
    mic.kill();
    await mic[Symbol.asyncDispose]();
    await relay?.[Symbol.asyncDispose]();
  }
}

/**
 * The causes first, so a failure names the stage that lost audio; then what the speaker
 * played: the tone's frequency and level, and no 10 ms window below {@linkcode GAP_RMS} but
 * the `allowedDips` the caller expects (concealed frames: the level may sag there, not vanish).
 */
function assertHeard(run: DeviceRun, allowedDips = 0, floor = GAP_RMS) {
  const { stats, said, micSaid, recorded, fed } = run;
  assertEquals(stats.device_underruns, 0, `the output device ran short: ${said}`);
  assert(micSaid.includes("capture lost 0 frames"), micSaid);
  assertGreater(stats.live_packets, 200, said);
  assertEquals(stats.device_period_ms, 100, said);
  // Played to a device: the latency until heard (+ its queue) and the drift correction.
  assert(stats.latency_device_median_ms! >= stats.latency_median_ms!, said);
  assertEquals(typeof stats.drift_dropped, "number", said);
  const a = analyseTone(recorded, RATE);
  if (!a) throw new Error(`no tone at the speaker; ${said}`);
  assert(a.seconds > 2.5, `the tone lasted ${a.seconds} s at the speaker`);
  // Sine 16384 → RMS 11585, through Opus and two PulseAudio hops; a gap shows as ~0. The
  // first 100 ms are the output's start (a ~40 ms rise), and the last 20 ms its stop.
  const body = recorded.subarray(a.start + RATE / 10, a.end - RATE / 50);
  const rms = windowRms(body);
  const dips = rms.flatMap((v, i) => v <= GAP_RMS ? [i] : []);
  const low = Math.min(...rms);
  if (low <= floor || dips.length > allowedDips) {
    const f = analyseTone(fed, RATE);
    const feedLow = f
      ? Math.min(...windowRms(fed.subarray(f.start + RATE / 10, f.end - RATE / 50)))
      : 0;
    throw new Error(
      `gap at the speaker: RMS ${low.toFixed(0)} at ${rms.indexOf(low) * 10 + 100} ms of ` +
        `the tone, ${dips.length} windows ≤ ${GAP_RMS} (${allowedDips} allowed) at ` +
        `${dips.map((i) => i * 10 + 100)} ms (the feed into the microphone: lowest RMS ` +
        `${feedLow.toFixed(0)}${feedLow <= GAP_RMS ? ", the feed had a gap too" : ", no gap"}); ` +
        `${said}; ${micSaid}`,
    );
  }
  const high = Math.max(...rms);
  assert(high < 13500, `level: RMS ${high.toFixed(0)}`);
  // The frequency of the body (the start's rise is not in it).
  assertAlmostEquals(zeroCrossingHz(body, RATE), 440, 1, micSaid);
}

Deno.test({
  name: "pulse: a tone into the virtual microphone → mic-broadcast → udp-client → speaker: " +
    "440 Hz, its level, no gaps",
  ...opts,
  fn: () =>
    retryIfRecorderExited(async () => {
      await using pulse = await startPulse();
      const run = await devicePath(pulse, { kind: "udp" });
      assertEquals(run.stats.lost, 0, run.said);
      assertEquals(run.stats.concealed, 0, run.said);
      assertHeard(run);
    }),
});

Deno.test({
  name: "pulse: a tone into the virtual microphone → mic-broadcast --tls → tls-client radio → " +
    "speaker: 440 Hz, its level, no gaps",
  ...opts,
  fn: () =>
    retryIfRecorderExited(async () => {
      await using pulse = await startPulse();
      const run = await devicePath(pulse, { kind: "tls" });
      assertHeard(run);
    }),
});

/** `n` packet indexes in [from, to) more than 3 apart, drawn from `seed` (mulberry32). */
function seededIndexes(seed: number, n: number, from: number, to: number): number[] {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const out: number[] = [];
  while (out.length < n) {
    const v = from + Math.floor(rnd() * (to - from));
    if (out.every((o) => Math.abs(o - v) > 3)) out.push(v);
  }
  return out.sort((a, b) => a - b);
}

Deno.test({
  name: "pulse: mic-broadcast → a relay dropping a seeded set of packets → udp-client → " +
    "speaker: as many concealed (PLC) frames as dropped packets, the tone kept through them",
  ...opts,
  fn: () =>
    retryIfRecorderExited(async () => {
      // Singles 1–3 s into the stream (10 ms packets), spaced so no two merge, and one pair.
      const singles = seededIndexes(11, 6, 100, 300);
      const drop = new Set([...singles, 320, 321]);
      await using pulse = await startPulse();
      const run = await devicePath(pulse, { kind: "udp", drop });
      const { stats, said, events } = run;
      // The relay dropped exactly the set (no listener stall made it skip any).
      assertEquals(run.dropped.length, drop.size, `dropped ${run.dropped}; ${said}`);
      assertEquals(stats.lost, drop.size, said);
      assertEquals(stats.concealed, singles.length + 1, `one gap per run of drops: ${said}`);
      const playout = events.find((e) => e.event === "playout") as Record<string, number>;
      assert(playout, JSON.stringify(events.map((e) => e.event)));
      // One concealed 10 ms Opus frame per dropped 10 ms packet: no more, no less.
      assertEquals(playout.opusFramesConcealed, drop.size, JSON.stringify(playout));
      assertEquals(playout.opusCorrupt, 0, JSON.stringify(playout));
      // PLC of a steady tone keeps it: the level may sag in a concealed window, not vanish, and
      // only where frames were concealed (each touches at most two 10 ms windows).
      assertHeard(run, 2 * drop.size, 6000);
    }),
});

/** RMS of consecutive 10 ms windows (48 kHz mono). */
function windowRms(x: Int16Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 480 <= x.length; i += 480) {
    let e = 0;
    for (let j = i; j < i + 480; j++) e += x[j]! * x[j]!;
    out.push(Math.sqrt(e / 480));
  }
  return out;
}

/** Frequency from positive-going zero crossings between the first and the last one. */
function zeroCrossingHz(x: Int16Array, rate: number): number {
  let first = -1, last = -1, n = 0;
  for (let i = 1; i < x.length; i++) {
    if (x[i - 1]! < 0 && x[i]! >= 0) {
      if (first < 0) first = i;
      else n++;
      last = i;
    }
  }
  return n > 0 ? n * rate / (last - first) : 0;
}
