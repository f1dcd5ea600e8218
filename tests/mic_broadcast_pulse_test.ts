/**
 * mic-broadcast on a real device path, headless (issue #11): a PulseAudio virtual microphone
 * fed a 440 Hz tone (tests/_pulse.ts) → mic-broadcast capturing it through miniaudio →
 * udp-client --radio playing through miniaudio to a PulseAudio null sink → recorded with parec.
 * Runs wherever `pulseaudio` is installed; in CI (CI=true) a missing daemon is a failure.
 */
import { assert, assertAlmostEquals, assertEquals, assertGreater } from "@std/assert";
import { WavWriter } from "../lib/audio/mod.ts";
import { havePulse, startPulse } from "./_pulse.ts";
import { analyseTone, sine } from "./_signal.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const ignore = !havePulse() && Deno.env.get("CI") !== "true";
const RATE = 48_000;

Deno.test({
  name: "pulse: a tone into the virtual microphone → mic-broadcast → udp-client → speaker: " +
    "440 Hz, its level, no gaps",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using pulse = await startPulse();
    const wav = `${pulse.runtimeDir}/tone440.wav`;
    {
      await using w = await WavWriter.create(wav, { sampleRate: RATE, channels: 1 });
      await w.write(sine(440, 10, RATE, 1, 16384));
    }
    // Children inherit PULSE_SERVER from Deno.env (startPulse set it).
    const mic = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cmd/mic_broadcast.ts`,
        "--audio-backend",
        "pulse",
        "--device",
        "Mic",
        "--udp",
        "127.0.0.1:0",
        "--ready-json",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const micErr = new Response(mic.stderr).text();
    try {
      const reader = mic.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`mic-broadcast exited: ${await micErr}`);
        text += value;
      }
      void reader.cancel().catch(() => {});
      const { udpPort } = JSON.parse(text.split("\n")[0]!) as { udpPort: number };
      const feeding = pulse.playToMic(wav);
      feeding.catch(() => {}); // awaited below; the daemon's dispose ends it on a failure
      // What reached the microphone too: a gap there is the feed's (paplay's), not ours.
      const [rec, feedRec] = await Promise.all([
        pulse.recordSpeaker(RATE),
        pulse.recordSpeaker(RATE, "micfeed.monitor"),
      ]);
      await new Promise((r) => setTimeout(r, 500));
      const client = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${ROOT}cmd/udp_client.ts`,
          `127.0.0.1:${udpPort}`,
          "--radio",
          "--audio-backend",
          "pulse",
          "--device",
          "Speaker",
          // A device test, not a latency one (bench/mic_latency.ts): a 300 ms buffer survives a
          // process stalled that long on a busy host, and its 100 ms device period (livePeriodMs)
          // a stalled audio thread.
          "--buffer",
          "300",
          "--seconds",
          "4",
          "--stats-json",
        ],
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
      const said = JSON.stringify(stats);
      mic.kill("SIGINT");
      const micSaid = await micErr;
      assertEquals((await mic.status).code, 0, micSaid);
      // The causes first, so a failure names the stage that lost audio.
      assertEquals(stats.device_underruns, 0, `the output device ran short: ${said}`);
      assertEquals(stats.lost, 0, said);
      assertEquals(stats.concealed, 0, said);
      assert(micSaid.includes("capture lost 0 frames"), micSaid);
      assertGreater(stats.live_packets, 200, said);
      assertEquals(stats.device_period_ms, 100, said);
      // Played to a device: the latency until heard (+ its queue) and the drift correction.
      assert(stats.latency_device_median_ms >= stats.latency_median_ms, said);
      assertEquals(typeof stats.drift_dropped, "number", said);
      const a = analyseTone(recorded, RATE);
      if (!a) throw new Error(`no tone at the speaker; client said: ${stderr}`);
      assert(a.seconds > 2.5, `the tone lasted ${a.seconds} s at the speaker`);
      // Sine 16384 → RMS 11585, through Opus and two PulseAudio hops; a gap shows as ~0. The
      // first 100 ms are the output's start (a ~40 ms rise), and the last 20 ms its stop.
      const body = recorded.subarray(a.start + RATE / 10, a.end - RATE / 50);
      const rms = windowRms(body);
      const low = Math.min(...rms);
      const high = Math.max(...rms);
      if (low <= 9000) {
        const f = analyseTone(fed, RATE);
        const feedLow = f
          ? Math.min(...windowRms(fed.subarray(f.start + RATE / 10, f.end - RATE / 50)))
          : 0;
        throw new Error(
          `gap at the speaker: RMS ${low.toFixed(0)} at ${rms.indexOf(low) * 10 + 100} ms of ` +
            `the tone (the feed into the microphone: lowest RMS ${feedLow.toFixed(0)}` +
            `${feedLow <= 9000 ? ", the feed had a gap too" : ", no gap"}); ${said}; ${micSaid}`,
        );
      }
      assert(high < 13500, `level: RMS ${high.toFixed(0)}`);
      // The frequency of the gap-free body (the start's rise is not in it).
      assertAlmostEquals(zeroCrossingHz(body, RATE), 440, 1, micSaid);
      await feeding;
    } finally {
      try {
        mic.kill("SIGKILL");
      } catch { /* exited */ }
      await mic.status;
      await micErr;
    }
  },
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
