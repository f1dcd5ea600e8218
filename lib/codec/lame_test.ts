import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { lameVersion, Mp3Encoder } from "./lame.ts";

/** A 440 Hz stereo tone at half scale. */
function tone(seconds: number, rate: number): Int16Array {
  const pcm = new Int16Array(Math.round(seconds * rate) * 2);
  for (let i = 0; i < pcm.length / 2; i++) {
    pcm[2 * i] = pcm[2 * i + 1] = Math.round(16000 * Math.sin(2 * Math.PI * 440 * i / rate));
  }
  return pcm;
}

Deno.test("Mp3Encoder: 3 s of a 48 kHz tone become an MP3 that ffmpeg decodes to that tone", async () => {
  assert(/^\d+\.\d+/.test(lameVersion()), lameVersion());
  using enc = Mp3Encoder.create({ sampleRate: 48_000, channels: 2, bitrateKbps: 128 });
  const pcm = tone(3, 48_000);
  const parts: Uint8Array[] = [];
  // In 100 ms blocks, as the Icecast source feeds it.
  for (let at = 0; at < pcm.length; at += 9600) parts.push(enc.encode(pcm.subarray(at, at + 9600)));
  parts.push(enc.flush());
  const mp3 = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) mp3.set(p, (at += p.length) - p.length);
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "tone.mp3");
    await Deno.writeFile(file, mp3);
    const out = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-i", file, "-f", "s16le", "-ac", "1", "-"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(new TextDecoder().decode(out.stderr), "");
    const decoded = new Int16Array(out.stdout.buffer, 0, out.stdout.length >> 1);
    // About 3 s (LAME's delay and padding add up to a frame or two) at 48 kHz.
    assert(Math.abs(decoded.length - 3 * 48_000) < 3 * 1152, `${decoded.length} samples`);
    // A 440 Hz tone: ~880 zero crossings a second in the middle second.
    let crossings = 0;
    for (let i = 48_001; i < 96_000; i++) {
      if ((decoded[i - 1]! < 0) !== (decoded[i]! < 0)) crossings++;
    }
    assert(Math.abs(crossings - 880) <= 4, `${crossings} zero crossings`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // 128 kbit/s constant: 3 s ≈ 48 KB.
  assert(Math.abs(mp3.length - 48_000) < 2_000, `${mp3.length} bytes`);
});

Deno.test("loadLame: a missing library is one error naming the package", async () => {
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { Mp3Encoder } from "${new URL("./lame.ts", import.meta.url)}";
       try { Mp3Encoder.create({ sampleRate: 48000, channels: 2 }); }
       catch (e) { console.log(e.name + ": " + e.message); }`,
    ],
    env: { SOUNDSOCK_LIBMP3LAME: "/nonexistent/libmp3lame.so.0" },
    stdout: "piped",
  }).output();
  const line = new TextDecoder().decode(child.stdout).trim();
  assert(line.startsWith("CodecLibraryError: Cannot load libmp3lame:"), line);
  assert(line.endsWith("Install it with: apt-get install libmp3lame0"), line);
});
