/**
 * Issue #9: one minute of the station, as the outside world receives it. A library of WAV
 * (22.05 kHz mono), FLAC and MP3 songs of 8 s each, so the minute crosses every kind of song
 * several times: ffmpeg records the RTP feed of udp-server for 60 s, and a listener of
 * icecast2 fed by tls-server's MP3 mount listens for 60 s while the title follows the songs.
 * Both servers are the real commands.
 */

import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { makeWav, spawnTlsServer } from "./_tls_helpers.ts";
import { startRtpServer } from "./_udp_helpers.ts";
import { freePort, hasIcecast, listenToMount, startIcecast, waitForMount } from "./_icecast.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SECONDS = 60;

/** Songs of every codec: a.wav (22.05 kHz mono), b.flac and c.mp3 (44.1 kHz stereo). */
async function mixedSongs(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-mixed-" });
  await Deno.writeFile(join(dir, "a.wav"), makeWav(8, 22050, 1, 1));
  const src = join(dir, "src.wav");
  await Deno.writeFile(src, makeWav(8, 44100, 2, 2));
  for (const [name, codec] of [["b.flac", "flac"], ["c.mp3", "libmp3lame"]]) {
    const r = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-i", src, "-c:a", codec!, "-y", join(dir, name!)],
    }).output();
    assert(r.success, new TextDecoder().decode(r.stderr));
  }
  await Deno.remove(src);
  return dir;
}

/** Longest run of exact zeros (both channels), in ms of 48 kHz stereo s16le. */
function longestSilenceMs(pcm: Int16Array): number {
  let run = 0;
  let longest = 0;
  for (let i = 0; i + 1 < pcm.length; i += 2) {
    run = pcm[i] === 0 && pcm[i + 1] === 0 ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest / 48;
}

async function rtpMinute(songs: string, dir: string): Promise<void> {
  {
    await using server = await startRtpServer(songs, dir, ["--log", join(dir, "udp.jsonl")]);
    const sdp = server.sdp;
    const out = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i", sdp, "-t", `${SECONDS}`]
        .concat(["-f", "s16le", "-ac", "2", "-ar", "48000", "-"]),
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout((SECONDS + 30) * 1000),
    }).output();
    const errors = new TextDecoder().decode(out.stderr);
    assert(out.success, errors);
    assertEquals(errors.trim(), "", "ffmpeg decoded the RTP feed without an error");
    const pcm = new Int16Array(out.stdout.buffer, 0, out.stdout.length >> 1);
    assertEquals(pcm.length, SECONDS * 48_000 * 2, "60 s of audio");
    const silence = longestSilenceMs(pcm);
    assert(silence < 50, `a ${silence.toFixed(0)} ms gap in the RTP audio`);
  }
  const events = (await Deno.readTextFile(join(dir, "udp.jsonl"))).trim().split("\n")
    .map((l) => JSON.parse(l));
  const played = new Set(
    events.filter((e) => e.event === "radio_song").map((e) => e.title),
  );
  for (const song of ["a.wav", "b.flac", "c.mp3"]) {
    assert(played.has(song), `${song} played in the minute: ${[...played]}`);
  }
}

async function icecastMinute(songs: string, dir: string): Promise<void> {
  const port = freePort();
  const icecast = await startIcecast(join(dir, "icecast"), port);
  const tls = await spawnTlsServer(songs, [
    "--icecast",
    `http://source:hackme@127.0.0.1:${port}/radio.mp3`,
  ]);
  try {
    await waitForMount(port);
    const got = await listenToMount(port, "/radio.mp3", SECONDS * 1000);
    const { titles } = got;
    assert(got.seconds >= SECONDS, `the listener was cut off after ${got.seconds.toFixed(1)} s`);
    assert(got.maxGapMs < 2000, `a ${got.maxGapMs.toFixed(0)} ms gap in the listener's bytes`);
    // 8 s songs: the title changed at every song, through every kind of song.
    assert(titles.length >= 6, `titles seen: ${titles}`);
    for (const song of ["a.wav", "b.flac", "c.mp3"]) assert(titles.includes(song), `${titles}`);
    const file = join(dir, "icecast.mp3");
    await Deno.writeFile(file, got.bytes);
    const decode = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-i", file, "-f", "s16le", "-ac", "2", "-ar", "48000", "-"],
    }).output();
    assertEquals(new TextDecoder().decode(decode.stderr), "");
    const seconds = decode.stdout.length / 4 / 48_000;
    assert(seconds >= SECONDS - 1, `only ${seconds.toFixed(2)} s of audio`);
  } finally {
    tls.child.kill("SIGTERM");
    await tls.child.status;
    try {
      icecast.kill("SIGTERM");
    } catch { /* it exited */ }
    await icecast.status;
  }
}

Deno.test({
  name: "one minute of the station across WAV, FLAC and MP3 songs: ffmpeg records the RTP feed " +
    "without errors or gaps, and an icecast2 listener hears it with the title following the songs",
  ignore: !hasIcecast,
  ...opts,
  fn: async () => {
    const songs = await mixedSongs();
    const dir = await Deno.makeTempDir({ prefix: "soundsock-minute-" });
    await Deno.mkdir(join(dir, "icecast"));
    await Deno.chmod(dir, 0o755); // icecast2 runs as nobody (startIcecast) and must get in
    try {
      // Both at once: one minute of wall time for the two.
      await Promise.all([rtpMinute(songs, dir), icecastMinute(songs, dir)]);
    } finally {
      await Deno.remove(songs, { recursive: true });
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
