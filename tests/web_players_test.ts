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

/**
 * Starts a tls-server --web, waits 6 s (a station on the air), runs the player `argv(url, dir)`
 * builds (writing `dir/out.wav`, `dir` writable by anyone), and checks what it wrote: at least
 * `minSeconds` of sound with no gap.
 */
async function assertPlays(
  player: string,
  minSeconds: number,
  argv: (url: string, dir: string) => Promise<string[]>,
) {
  const server = await spawnTlsServer(SONGS, ["--web"]);
  const dir = await Deno.makeTempDir({ prefix: `soundsock-${player}-` });
  try {
    await Deno.chmod(dir, 0o777);
    await new Promise((r) => setTimeout(r, 6000));
    const [cmd, ...args] = await argv(`https://localhost:${server.port}/stream`, dir);
    const out = await new Deno.Command(cmd!, {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const said = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    assert(out.success, `${player} failed: ${said}`);
    const heard = describe(await decode(join(dir, "out.wav")));
    assertGreater(heard.seconds, minSeconds, `${JSON.stringify(heard)}; ${player} said: ${said}`);
    assertGreater(heard.rms, 300, `${player} wrote near-silence: ${JSON.stringify(heard)}`);
    assert(heard.longestQuietMs < 500, `a gap in ${player}'s playback: ${JSON.stringify(heard)}`);
  } finally {
    server.child.kill("SIGTERM");
    await server.child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "players: mpv plays /stream over verified HTTPS, joining a station on the air",
  ignore: !have("mpv") && !inCi,
  sanitizeResources: false,
  fn: () =>
    assertPlays("mpv", PLAY_SECONDS - 0.5, async (url, dir) => [
      "mpv",
      "--no-config",
      "--no-video",
      "--really-quiet",
      "--ao=pcm",
      `--ao-pcm-file=${join(dir, "out.wav")}`,
      `--length=${PLAY_SECONDS}`,
      "--tls-verify=yes",
      `--tls-ca-file=${(await testCerts()).caCert}`,
      url,
    ]),
});

Deno.test({
  name: "players: VLC plays /stream over verified HTTPS, joining a station on the air",
  ignore: !have("cvlc") && !inCi,
  sanitizeResources: false,
  // VLC buffers ~1 s (its network caching) before it plays, inside --run-time.
  fn: () =>
    assertPlays("VLC", PLAY_SECONDS - 2, async (url, dir) => {
      // VLC trusts the CAs in a folder; it refuses to run as root, so it runs as nobody.
      const trust = join(dir, "trust");
      await Deno.mkdir(trust, { mode: 0o755 });
      await Deno.chmod(trust, 0o755);
      await Deno.copyFile((await testCerts()).caCert, join(trust, "ca.crt"));
      await Deno.chmod(join(trust, "ca.crt"), 0o644);
      const vlc = [
        "cvlc",
        "--intf",
        "dummy",
        "--no-video",
        "--aout",
        "afile",
        "--audiofile-file",
        join(dir, "out.wav"),
        "--audiofile-wav",
        "--no-gnutls-system-trust",
        "--gnutls-dir-trust",
        trust,
        "--run-time",
        String(PLAY_SECONDS),
        "--play-and-exit",
        url,
      ];
      return Deno.uid() === 0
        ? ["runuser", "-u", "nobody", "--", "env", `HOME=${dir}`, ...vlc]
        : ["env", `HOME=${dir}`, ...vlc];
    }),
});
