/**
 * mic-broadcast end to end (issue #11): the real command with a virtual microphone (`--tone`)
 * on port 0, heard by the ordinary listeners (udp-client --radio, tls-client radio) into WAV
 * files; and the live station's rules in process — no stale join burst, listeners coming and
 * going without disturbing one that stays, REJECT when full.
 */
import { assert, assertEquals, assertGreater, assertLess, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { readWav } from "../lib/audio/wav.ts";
import { EventLog } from "../lib/cli/event_log.ts";
import { startBroadcast } from "../lib/live/broadcast.ts";
import { LiveStation } from "../lib/live/live_station.ts";
import { ToneSource } from "../lib/live/sources.ts";
import { AutoBuffer } from "../lib/live/playout_control.ts";
import { listenRadio, RequestRefusedError } from "../lib/udp/client.ts";
import { FrameType } from "../lib/wire/frame.ts";
import { readStreamInfo } from "../lib/wire/messages.ts";
import type { StationEvent } from "../lib/media/station.ts";
import { handshake, MemoryOutput, rawSocket, receiveFrame } from "./_udp_helpers.ts";
import { testCerts } from "./_tls_helpers.ts";
import { spawnBroadcast } from "./_mic_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeOps: false, sanitizeResources: false };

/** Power of `freq` in `x` (Goertzel), normalised so a full-scale sine gives about 1. */
function goertzel(x: Float64Array, rate: number, freq: number): number {
  const k = 2 * Math.cos(2 * Math.PI * freq / rate);
  let s1 = 0;
  let s2 = 0;
  for (const v of x) {
    const s = v + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2;
  return 4 * power / (x.length * x.length);
}

/** Mono float samples of a recording (channel 0), ±1. */
function channel0(samples: Int16Array, channels: number): Float64Array {
  const out = new Float64Array(samples.length / channels);
  for (let i = 0; i < out.length; i++) out[i] = samples[i * channels]! / 32768;
  return out;
}

/**
 * The recording is the tone: 440 Hz dominates, its level is the source's (amplitude 0.5),
 * and no 10 ms window after the start is silent (no gap).
 */
function assertTone(x: Float64Array, rate: number, hz: number): void {
  // Skip the Opus start (encoder lookahead, the first frame's fade-in).
  const body = x.subarray(Math.round(rate * 0.05));
  assertGreater(body.length, rate * 0.5, `only ${body.length} samples recorded`);
  const at = goertzel(body, rate, hz);
  for (const other of [hz / 2, hz * 1.5, hz * 2, 1000]) {
    assertGreater(at, 100 * goertzel(body, rate, other), `${other} Hz is as strong as ${hz} Hz`);
  }
  let sum = 0;
  for (const v of body) sum += v * v;
  const rms = Math.sqrt(sum / body.length);
  // A sine of amplitude 0.5 has RMS 0.354; Opus keeps the level within a dB or so.
  assert(rms > 0.3 && rms < 0.4, `RMS ${rms.toFixed(3)} is not the tone's 0.354`);
  const win = Math.round(rate / 100);
  for (let i = 0; i + win <= body.length; i += win) {
    let s = 0;
    for (let j = i; j < i + win; j++) s += body[j]! * body[j]!;
    const r = Math.sqrt(s / win);
    assert(
      r > 0.15,
      `gap: RMS ${r.toFixed(3)} in the 10 ms at ${((i / rate) * 1000).toFixed(0)} ms`,
    );
  }
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/${cmd}.ts`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test(
  "mic-broadcast --tone 440 → udp-client --radio and tls-client radio: the tone, its level, no gaps",
  opts,
  async () => {
    const certs = await testCerts();
    const dir = await Deno.makeTempDir({ prefix: "soundsock-mic-" });
    const mic = await spawnBroadcast([
      "--tone",
      "440",
      "--udp",
      "127.0.0.1:0",
      "--tls",
      "127.0.0.1:0",
      "--cert",
      certs.serverCert,
      "--key",
      certs.serverKey,
    ]);
    try {
      const udpWav = join(dir, "udp.wav");
      const tlsWav = join(dir, "tls.wav");
      const [udp, tls] = await Promise.all([
        run("udp_client", [
          `127.0.0.1:${mic.ready.udpPort}`,
          "--radio",
          "--output",
          udpWav,
          "--seconds",
          "2",
          "--stats-json",
        ]),
        run("tls_client", [
          "radio",
          "--server",
          `127.0.0.1:${mic.ready.tlsPort}`,
          "--ca",
          certs.caCert,
          "--output",
          tlsWav,
          "--seconds",
          "2",
        ]),
      ]);
      assertEquals(udp.code, 0, udp.stderr);
      assertEquals(tls.code, 0, tls.stderr);
      const stats = JSON.parse(udp.stdout.trim().split("\n").at(-1)!);
      assertEquals(stats.lost, 0);
      assertEquals(stats.concealed, 0);
      assertGreater(stats.live_packets, 100);
      assert(stats.latency_median_ms > 0, udp.stdout);
      assert(/Live: latency capture → output median [\d.]+ ms/.test(tls.stderr), tls.stderr);
      for (const path of [udpWav, tlsWav]) {
        const wav = readWav(await Deno.readFile(path));
        assertEquals(wav.sampleRate, 48_000, path);
        assertEquals(wav.channels, 1, path);
        assertTone(channel0(wav.pcm, wav.channels), wav.sampleRate, 440);
      }
    } finally {
      const { code, stderr } = await mic.stop();
      assertEquals(code, 0, stderr);
      assert(stderr.includes("mic-broadcast stopped"), stderr);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("mic-broadcast: bad command lines are one-line usage errors", opts, async () => {
  const none = await run("mic_broadcast", ["--tone", "440"]);
  assertEquals(none.code, 2);
  assert(none.stderr.startsWith("error: give --udp HOST:PORT"), none.stderr);
  const both = await run("mic_broadcast", ["--tone", "440", "--input", "x.mp3", "--udp", ":0"]);
  assertEquals(both.code, 2);
  assert(both.stderr.includes("choose one source"), both.stderr);
  const rate = await run("mic_broadcast", ["--tone", "440", "--rate", "16000", "--udp", ":0"]);
  assertEquals(rate.code, 2);
  assert(rate.stderr.includes("Opus is 48 kHz"), rate.stderr);
  const file = await run("mic_broadcast", ["--input", "/nonexistent.mp3", "--udp", ":0"]);
  assertEquals(file.code, 1);
  assert(file.stderr.startsWith("error: Cannot use --input /nonexistent.mp3"), file.stderr);
  assert(!file.stderr.includes("    at "), file.stderr);
});

/** A broadcast of a tone on UDP and TLS port 0, in process. */
async function tone(options: { maxListeners?: number; frameMs?: 10 | 20 } = {}) {
  const certs = await testCerts();
  const stop = new AbortController();
  const b = await startBroadcast({
    source: new ToneSource(440, { blockFrames: 480 * ((options.frameMs ?? 10) / 10) }),
    frameMs: options.frameMs,
    udp: { hostname: "127.0.0.1", port: 0 },
    tls: {
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(certs.serverCert),
      key: await Deno.readTextFile(certs.serverKey),
    },
    maxListeners: options.maxListeners,
    maxPerIp: 0,
    log: EventLog.none(),
    signal: stop.signal,
  });
  return Object.assign(b, {
    async [Symbol.asyncDispose]() {
      stop.abort();
      await b.finished;
    },
  });
}

Deno.test(
  "live station: a listener joining late gets STREAM_INFO, then only audio captured after it joined",
  opts,
  async () => {
    await using b = await tone();
    await new Promise((r) => setTimeout(r, 600));
    // In process: the subscriber's first packet is the next one captured.
    const events: StationEvent[] = [];
    const sentAtJoin = b.station.samplesSent;
    const unsubscribe = b.station.subscribe((e) => events.push(e));
    assertEquals(events.length, 1);
    assertEquals(events[0]!.type, "song");
    await new Promise((r) => setTimeout(r, 100));
    unsubscribe();
    const first = events.find((e) => e.type === "packet") as
      | Extract<StationEvent, { type: "packet" }>
      | undefined;
    if (!first) throw new Error("no packet after joining");
    assertEquals(first.packet.timestampUs, Math.round(sentAtJoin * 1e6 / 48_000));
    // Over UDP: ACCEPT, NOW_PLAYING, STREAM_INFO — and no DATA from before the join.
    using sock = rawSocket();
    const joinSample = b.station.samplesSent;
    const { answer } = await handshake(sock, b.udp!.address, { op: "radio" });
    assertEquals(answer.type, FrameType.ACCEPT);
    const info = readStreamInfo(await receiveFrame(sock, (f) => f.type === FrameType.STREAM_INFO));
    assertEquals(info.live, true);
    assertEquals(info.codec, "opus");
    assertEquals(info.frameMs, 10);
    assertEquals(info.channels, 1);
    assert(
      info.captureEpochUs !== undefined && info.captureEpochUs > 1.7e15,
      String(info.captureEpochUs),
    );
    const data = await receiveFrame(sock, (f) => f.type === FrameType.DATA);
    assert(
      data.timestamp >= Math.round(joinSample * 1e6 / 48_000),
      `stale audio: DATA at ${data.timestamp} µs, joined at ${joinSample} samples`,
    );
  },
);

Deno.test(
  "live station: ten listeners join and leave while one listens throughout, unaffected",
  opts,
  async () => {
    await using b = await tone();
    const log = EventLog.none();
    const output = new MemoryOutput();
    const long = listenRadio(b.udp!.address, {
      signal: new AbortController().signal,
      log,
      bufferMs: 60,
      maxSeconds: 3,
      openOutput: (format) => {
        output.format = format;
        return Promise.resolve(output);
      },
    });
    await new Promise((r) => setTimeout(r, 300));
    const shorts = [];
    for (let i = 0; i < 10; i++) {
      shorts.push(listenRadio(b.udp!.address, {
        signal: new AbortController().signal,
        log,
        maxSeconds: 0.3 + (i % 3) * 0.2,
        openOutput: () => Promise.resolve(new MemoryOutput()),
      }));
      await new Promise((r) => setTimeout(r, 150));
    }
    const shortReports = await Promise.all(shorts);
    for (const r of shortReports) assertGreater(r.received, 5);
    const report = await long;
    assertEquals(report.lost, 0);
    assertEquals(report.concealed, 0);
    assertEquals(report.late, 0);
    assertGreater(report.received, 250);
    assertGreater(report.live?.packets ?? 0, 250);
    assertEquals(b.udp!.stats.listenersJoined, 11);
    assertTone(channel0(output.samples(), 1), 48_000, 440);
  },
);

Deno.test(
  "live station: a full broadcast answers REJECT server_full (UDP and TLS)",
  opts,
  async () => {
    await using b = await tone({ maxListeners: 1 });
    const first = listenRadio(b.udp!.address, {
      signal: new AbortController().signal,
      log: EventLog.none(),
      maxSeconds: 1.5,
    });
    await new Promise((r) => setTimeout(r, 300));
    await assertRejects(
      () =>
        listenRadio(b.udp!.address, {
          signal: new AbortController().signal,
          log: EventLog.none(),
          maxSeconds: 1,
        }),
      RequestRefusedError,
      "Server full",
    );
    assertGreater((await first).received, 50);
    assertEquals(b.udp!.stats.rejected, 1);
    // TLS: one listener in, the next refused with exit status 3.
    const certs = await testCerts();
    const args = (s: string) => [
      "radio",
      "--server",
      `127.0.0.1:${b.tls!.addr.port}`,
      "--ca",
      certs.caCert,
      "--output",
      "-",
      "--seconds",
      s,
    ];
    const inFirst = run("tls_client", args("3"));
    await new Promise((r) => setTimeout(r, 1500));
    const refused = await run("tls_client", args("1"));
    assertEquals(refused.code, 3, refused.stderr);
    assert(/full/.test(refused.stderr), refused.stderr);
    assertEquals((await inFirst).code, 0);
  },
);

Deno.test("live station: 20 ms frames and PCM are what STREAM_INFO says", opts, async () => {
  for (const codec of ["opus", "pcm"] as const) {
    const stop = new AbortController();
    const station = new LiveStation({
      source: new ToneSource(440, { channels: 2, blockFrames: 960 }),
      codec,
      frameMs: 20,
      signal: stop.signal,
    });
    const events: StationEvent[] = [];
    station.subscribe((e) => events.push(e));
    const running = station.run();
    await new Promise((r) => setTimeout(r, 250));
    stop.abort();
    await running;
    const song = events[0];
    if (song?.type !== "song") throw new Error("no song event first");
    assertEquals(song.info.channels, 2);
    assertEquals(song.info.codec, codec === "opus" ? "opus" : "pcm_s16le");
    const packets = events.filter((e) => e.type === "packet").map((e) => e.packet);
    assertGreater(packets.length, 5);
    // Timestamps follow the sample count: 20 ms per Opus packet, PCM split under 1200 bytes.
    const step = codec === "opus" ? 20_000 : 1e6 * Math.floor(1200 / 4) / 48_000;
    for (let i = 1; i < packets.length; i++) {
      assertLess(Math.abs(packets[i]!.timestampUs - packets[i - 1]!.timestampUs - step), 1);
      assertEquals(packets[i]!.sequence, packets[i - 1]!.sequence + 1);
    }
    if (codec === "pcm") { for (const p of packets) assertLess(p.payload.length, 1201); }
  }
});

Deno.test(
  "udp-client on a live broadcast: a 40 ms jitter buffer by default, --buffer auto adapts",
  opts,
  async () => {
    await using b = await tone();
    const listen = (liveBufferMs?: number | "auto") =>
      listenRadio(b.udp!.address, {
        signal: new AbortController().signal,
        log: EventLog.none(),
        maxSeconds: 3,
        ...(liveBufferMs === undefined ? {} : { liveBufferMs }),
        openOutput: () => Promise.resolve(new MemoryOutput()),
      });
    const [byDefault, auto] = await Promise.all([listen(), listen("auto")]);
    assertEquals(byDefault.live?.bufferMs, 40);
    assert(
      new AutoBuffer().sizesMs.includes(auto.live?.bufferMs ?? -1),
      `auto chose ${auto.live?.bufferMs}`,
    );
    assertEquals(auto.lost, 0);
    // The command line: MS or auto, nothing else.
    const bad = await run("udp_client", ["127.0.0.1:9", "--radio", "--buffer", "soon"]);
    assertEquals(bad.code, 2);
    assert(
      bad.stderr.startsWith('error: --buffer: "soon" is neither a number of ms nor auto'),
      bad.stderr,
    );
  },
);
