/**
 * `/stream` in the players people use (issue #14): mpv and VLC open
 * `https://localhost:PORT/stream` of a real tls-server --web, verify its certificate against
 * the test CA, and play it to a WAV file (mpv's `--ao=pcm`, VLC's `afile` output) in real time.
 * Each joins a station that has been on the air for a while, as a listener does: a late join
 * is what VLC 3 could not play (it ended after one Ogg page when the first granule said "N
 * seconds in"; lib/icecast/ogg_rebase.ts). Runs where mpv and cvlc are installed; in CI
 * (CI=true) a missing player is a failure.
 */
import { assert, assertGreater } from "@std/assert";
import { join } from "@std/path";
import { spawnTlsServer, testCerts } from "./_tls_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SONGS = join(ROOT, "songs");
const have = (cmd: string) =>
  new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" }).outputSync()
    .success;
const inCi = Deno.env.get("CI") === "true";
const PLAY_SECONDS = 5;

/** Decodes a player's WAV with ffmpeg to mono s16 48 kHz; returns its samples. */
async function decode(wav: string): Promise<Int16Array> {
  const out = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-i", wav, "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ffmpeg: ${new TextDecoder().decode(out.stderr)}`);
  return new Int16Array(out.stdout.buffer, 0, out.stdout.length >> 1);
}

/** Seconds of audio, its RMS, and the longest run of near-silence (ms) after the first sound. */
function describe(samples: Int16Array) {
  const win = 480;
  let energy = 0, quietRun = 0, longestQuiet = 0, started = false;
  for (let i = 0; i + win <= samples.length; i += win) {
    let e = 0;
    for (let j = i; j < i + win; j++) e += samples[j]! * samples[j]!;
    energy += e;
    const loud = Math.sqrt(e / win) > 30;
    if (loud) started = true;
    if (started) {
      quietRun = loud ? 0 : quietRun + 10;
      longestQuiet = Math.max(longestQuiet, quietRun);
    }
  }
  return {
    seconds: samples.length / 48_000,
    rms: Math.sqrt(energy / Math.max(1, samples.length)),
    longestQuietMs: longestQuiet,
  };
}

/** A station on the air for `onAirMs` before the player joins. */
async function station(onAirMs: number) {
  const server = await spawnTlsServer(SONGS, ["--web"]);
  await new Promise((r) => setTimeout(r, onAirMs));
  return server;
}

Deno.test({
  name: "players: mpv plays /stream over verified HTTPS, joining a station on the air",
  ignore: !have("mpv") && !inCi,
  sanitizeResources: false,
  async fn() {
    const server = await station(6000);
    const dir = await Deno.makeTempDir({ prefix: "soundsock-mpv-" });
    try {
      const wav = join(dir, "mpv.wav");
      const out = await new Deno.Command("mpv", {
        args: [
          "--no-config",
          "--no-video",
          "--really-quiet",
          "--ao=pcm",
          `--ao-pcm-file=${wav}`,
          `--length=${PLAY_SECONDS}`,
          "--tls-verify=yes",
          `--tls-ca-file=${(await testCerts()).caCert}`,
          `https://localhost:${server.port}/stream`,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const said = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      assert(out.success, `mpv failed: ${said}`);
      const heard = describe(await decode(wav));
      assertGreater(heard.seconds, PLAY_SECONDS - 0.5, JSON.stringify(heard));
      assertGreater(heard.rms, 300, `mpv wrote near-silence: ${JSON.stringify(heard)}`);
      assert(heard.longestQuietMs < 500, `a gap in mpv's playback: ${JSON.stringify(heard)}`);
    } finally {
      server.child.kill("SIGTERM");
      await server.child.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "players: VLC plays /stream over verified HTTPS, joining a station on the air",
  ignore: !have("cvlc") && !inCi,
  sanitizeResources: false,
  async fn() {
    const server = await station(6000);
    // VLC refuses to run as root: run it as nobody, in a folder nobody may write.
    const dir = await Deno.makeTempDir({ prefix: "soundsock-vlc-" });
    await Deno.chmod(dir, 0o777);
    try {
      const trust = join(dir, "trust");
      await Deno.mkdir(trust);
      await Deno.copyFile((await testCerts()).caCert, join(trust, "ca.crt"));
      await Deno.chmod(trust, 0o755);
      await Deno.chmod(join(trust, "ca.crt"), 0o644);
      const wav = join(dir, "vlc.wav");
      const vlc = [
        "cvlc",
        "--intf",
        "dummy",
        "--no-video",
        "--aout",
        "afile",
        "--audiofile-file",
        wav,
        "--audiofile-wav",
        "--no-gnutls-system-trust",
        "--gnutls-dir-trust",
        trust,
        "--run-time",
        String(PLAY_SECONDS),
        "--play-and-exit",
        `https://localhost:${server.port}/stream`,
      ];
      const argv = Deno.uid() === 0
        ? ["runuser", "-u", "nobody", "--", "env", `HOME=${dir}`, ...vlc]
        : ["env", `HOME=${dir}`, ...vlc];
      const out = await new Deno.Command(argv[0]!, {
        args: argv.slice(1),
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(30_000),
      }).output();
      const said = new TextDecoder().decode(out.stderr);
      assert(out.success, `VLC failed: ${said}`);
      const heard = describe(await decode(wav));
      // VLC buffers ~1 s (its network caching) before it plays, inside --run-time.
      assertGreater(heard.seconds, PLAY_SECONDS - 2, `${JSON.stringify(heard)}; VLC said: ${said}`);
      assertGreater(heard.rms, 300, `VLC wrote near-silence: ${JSON.stringify(heard)}`);
      assert(heard.longestQuietMs < 500, `a gap in VLC's playback: ${JSON.stringify(heard)}`);
    } finally {
      server.child.kill("SIGTERM");
      await server.child.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
