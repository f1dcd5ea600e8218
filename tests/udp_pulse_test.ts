/**
 * The whole path makes real sound: a udp-server streams a song, the real udp-client command
 * plays it through miniaudio's PulseAudio backend into a private daemon's null sink, and the
 * sink's monitor records what came out.
 */
import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import { WavWriter } from "../lib/audio/wav.ts";
import { EventLog } from "../lib/cli/event_log.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { UdpServer } from "../lib/udp/server.ts";
import { havePulse, retryIfRecorderExited, startPulse } from "./_pulse.ts";
import { analyseTone, sine } from "./_signal.ts";

const ignore = !havePulse() && Deno.env.get("CI") !== "true";
const ROOT = new URL("../", import.meta.url).pathname;
const RATE = 44100;

Deno.test({
  name:
    "udp-client plays a streamed song through PulseAudio: 660 Hz recorded for its full length, no gaps",
  ignore,
  sanitizeResources: false,
  fn: () =>
    retryIfRecorderExited(async () => {
      const dir = await Deno.makeTempDir();
      try {
        // A 3 s, 660 Hz stereo WAV: served as PCM packets, paced in real time.
        const wav = await WavWriter.create(`${dir}/tone.wav`, { sampleRate: RATE, channels: 2 });
        await wav.write(sine(660, 3, RATE, 2, 12000));
        await wav.close();
        await using pulse = await startPulse();
        await using server = UdpServer.start({
          catalog: await SongCatalog.open(dir),
          hostname: "127.0.0.1",
          port: 0,
          log: EventLog.none(),
          signal: new AbortController().signal,
        });
        const rec = await pulse.recordSpeaker(RATE);
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            `${ROOT}cmd/udp_client.ts`,
            `127.0.0.1:${server.address.port}`,
            "--song",
            "tone.wav",
            "--audio-backend",
            "pulse",
            "--device",
            "Speaker",
          ],
          env: { ...pulse.env, NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(30_000),
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assertEquals(out.code, 0, stderr);
        assert(stderr.includes("Output: pulse"), stderr);
        // The monitor delivers the tail a little later.
        await new Promise((r) => setTimeout(r, 500));
        const recorded = await rec.stop();
        const tone = analyseTone(recorded, RATE);
        if (!tone) throw new Error(`nothing audible was recorded; client said:\n${stderr}`);
        assertAlmostEquals(tone.hz, 660, 3);
        assertAlmostEquals(tone.seconds, 3, 0.1, `tone lasted ${tone.seconds} s`);
        // 12000 peak → RMS ≈ 8485; a dropout would pull some 10 ms window far below.
        assert(tone.minWindowRms > 7000, `gap: a 10 ms window had RMS ${tone.minWindowRms}`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});
