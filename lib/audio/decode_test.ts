import { assert, assertEquals, assertRejects } from "@std/assert";
import fc from "fast-check";
import { decodeBytes, decodeFile, decodeStream, probeSong } from "./decode.ts";
import { AudioDecodeError } from "./errors.ts";
import { Mp3PushDecoder, WavPushDecoder } from "./push_decoder.ts";
import { ffmpegDecode, ffprobe, fixtures, maxDiff, songFiles } from "./_fixtures_test_util.ts";

/** Checks one file against ffmpeg: rate, channels, frame count, samples within 1 LSB. */
async function matchesFfmpeg(path: string) {
  const ours = await decodeFile(path);
  const ref = await ffmpegDecode(path);
  const probe = await ffprobe(path);
  assertEquals(ours.sampleRate, probe.sampleRate, `${path}: sample rate`);
  assertEquals(ours.channels, probe.channels, `${path}: channels`);
  assertEquals(ours.frames, ref.length / probe.channels, `${path}: frame count vs ffmpeg`);
  const d = maxDiff(ours.pcm, ref);
  assert(d.max <= 1, `${path}: differs from ffmpeg by ${d.max} at sample ${d.at}`);
  const info = await probeSong(path);
  assertEquals(info.frames, ours.frames, `${path}: probeSong frames`);
  assertEquals(info.codec, ours.codec);
}

Deno.test("decodeFile matches ffmpeg (rate, channels, frame count, samples within 1 LSB) for MP3, WAV and FLAC fixtures", async (t) => {
  const { files } = await fixtures();
  for (const f of files) {
    await t.step(f.name, () => matchesFfmpeg(f.path));
  }
});

const songs = songFiles();
Deno.test({
  name: "decodeFile matches ffmpeg for every file in songs/",
  ignore: songs.length === 0,
  async fn(t) {
    for (const s of songs) await t.step(s.split("/").pop()!, () => matchesFfmpeg(s));
  },
});

Deno.test("Mp3PushDecoder output is bit-identical to whole-file decoding in random chunk sizes", async () => {
  const { files } = await fixtures();
  const mp3s = await Promise.all(
    files.filter((f) => f.name.endsWith(".mp3")).map(async (f) => ({
      name: f.name,
      bytes: await Deno.readFile(f.path),
      whole: (await decodeFile(f.path)).pcm,
    })),
  );
  using probe = await Mp3PushDecoder.open();
  probe.close();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...mp3s),
      fc.array(fc.integer({ min: 1, max: 6000 }), { minLength: 1, maxLength: 40 }),
      async (song, sizes) => {
        using dec = await Mp3PushDecoder.open();
        const out: Int16Array[] = [];
        let o = 0, k = 0;
        while (o < song.bytes.length) {
          const n = sizes[k++ % sizes.length]!;
          dec.push(song.bytes.subarray(o, o + n));
          o += n;
          const c = dec.read();
          if (c) out.push(c);
        }
        dec.end();
        const c = dec.read();
        if (c) out.push(c);
        const pcm = new Int16Array(out.reduce((n, x) => n + x.length, 0));
        let p = 0;
        for (const x of out) {
          pcm.set(x, p);
          p += x.length;
        }
        assertEquals(pcm.length, song.whole.length, song.name);
        assertEquals(maxDiff(pcm, song.whole).max, 0, song.name);
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("WavPushDecoder passes PCM through unchanged in random chunk sizes", async () => {
  const { files } = await fixtures();
  const path = files.find((f) => f.name === "src.wav")!.path;
  const bytes = await Deno.readFile(path);
  const whole = (await decodeFile(path)).pcm;
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1 }), (sizes) => {
      const dec = new WavPushDecoder();
      const parts: Int16Array[] = [];
      for (let o = 0, k = 0; o < bytes.length; o += sizes[k++ % sizes.length]!) {
        dec.push(bytes.subarray(o, o + sizes[k % sizes.length]!));
        const c = dec.read();
        if (c) parts.push(c);
      }
      dec.end();
      const pcm = new Int16Array(parts.reduce((s, x) => s + x.length, 0));
      let o = 0;
      for (const x of parts) {
        pcm.set(x, o);
        o += x.length;
      }
      assertEquals(pcm.length, whole.length);
      assertEquals(maxDiff(pcm, whole).max, 0);
      assertEquals(dec.sampleRate, 44100);
    }),
    { numRuns: 30 },
  );
});

Deno.test("decodeStream yields the same samples as decodeFile, in chunks", async () => {
  const { files } = await fixtures();
  for (const name of ["cbr128.mp3", "src.wav", "s16.flac", "s24.wav"]) {
    const path = files.find((f) => f.name === name)!.path;
    const whole = await decodeFile(path);
    await using s = await decodeStream(path);
    assertEquals([s.sampleRate, s.channels, s.codec], [
      whole.sampleRate,
      whole.channels,
      whole.codec,
    ]);
    const parts: Int16Array[] = [];
    for await (const c of s) parts.push(c);
    const pcm = new Int16Array(parts.reduce((n, x) => n + x.length, 0));
    let o = 0;
    for (const x of parts) {
      pcm.set(x, o);
      o += x.length;
    }
    assertEquals(pcm.length, whole.pcm.length, name);
    assertEquals(maxDiff(pcm, whole.pcm).max, 0, name);
  }
});

Deno.test("decoding a non-audio, truncated, corrupt or missing file throws AudioDecodeError naming the file", async () => {
  const { dir, files } = await fixtures();
  const text = `${dir}/notes.mp3`;
  await Deno.writeTextFile(text, "these are not the droids you are looking for\n".repeat(200));
  const err = await assertRejects(() => decodeFile(text), AudioDecodeError);
  assertEquals(err.message, `Cannot decode "${text}": not an audio file`);
  assertEquals(err.name, "AudioDecodeError");

  const wav = await Deno.readFile(files.find((f) => f.name === "src.wav")!.path);
  const truncWav = `${dir}/trunc.wav`;
  await Deno.writeFile(truncWav, wav.subarray(0, 30));
  const e2 = await assertRejects(() => decodeFile(truncWav), AudioDecodeError);
  assert(e2.message.startsWith(`Cannot decode "${truncWav}": truncated`), e2.message);

  const mp3 = await Deno.readFile(files.find((f) => f.name === "id3.mp3")!.path);
  const truncMp3 = `${dir}/trunc.mp3`;
  await Deno.writeFile(truncMp3, mp3.subarray(0, 60)); // inside the ID3 tag: no frame at all
  const e3 = await assertRejects(() => decodeFile(truncMp3), AudioDecodeError);
  assert(e3.message.startsWith(`Cannot decode "${truncMp3}": not an audio file`), e3.message);

  const flac = await Deno.readFile(files.find((f) => f.name === "s16.flac")!.path);
  const badFlac = `${dir}/corrupt.flac`;
  const corrupt = flac.slice(0, 8000);
  corrupt.fill(0x55, 4, 60); // destroy STREAMINFO
  await Deno.writeFile(badFlac, corrupt);
  const e4 = await assertRejects(() => decodeFile(badFlac), AudioDecodeError);
  assert(e4.message.startsWith(`Cannot decode "${badFlac}": `), e4.message);

  const missing = `${dir}/missing.mp3`;
  const e5 = await assertRejects(() => decodeFile(missing), AudioDecodeError);
  assertEquals(e5.message, `Cannot decode "${missing}": no such file`);
  assert(e5.cause instanceof Deno.errors.NotFound);

  const e6 = await assertRejects(
    () => decodeBytes(new Uint8Array([1, 2, 3]), { path: "x.bin" }),
    AudioDecodeError,
  );
  assertEquals(e6.message, `Cannot decode "x.bin": not an audio file`);
});

Deno.test("decodeFile stops when its signal is aborted", async () => {
  const { files } = await fixtures();
  await assertRejects(
    () => decodeFile(files[0]!.path, { signal: AbortSignal.abort(new Error("stop")) }),
    Error,
    "stop",
  );
});
