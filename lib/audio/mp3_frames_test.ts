import { assertEquals } from "@std/assert";
import { DECODER_DELAY, Mp3FrameSplitter, scanMp3 } from "./mp3_frames.ts";
import { ffmpegDecode, fixtures } from "./_fixtures_test_util.ts";

Deno.test("scanMp3 reads the LAME tag and predicts ffmpeg's output length without decoding", async () => {
  const { files } = await fixtures();
  for (const f of files.filter((f) => f.name.endsWith(".mp3"))) {
    const s = scanMp3(await Deno.readFile(f.path));
    if (!s) throw new Error(`${f.name}: no frames`);
    const ref = await ffmpegDecode(f.path);
    assertEquals(s.totalSamples, ref.length / s.channels, f.name);
    if (f.name === "notag.mp3") assertEquals(s.tag, undefined);
    if (f.name === "cbr128.mp3") {
      assertEquals(s.tag?.kind, "Info");
      assertEquals(s.tag?.delay, 576);
      assertEquals(s.trimStart, 576 + DECODER_DELAY);
      assertEquals(s.tag?.frameCount, s.frames.length);
    }
    if (f.name === "vbr.mp3") assertEquals(s.tag?.kind, "Xing");
    if (f.name === "id3.mp3") assertEquals(s.id3v2Bytes > 0, true);
    // Frames tile the audio data: each starts where the previous one ended.
    for (let i = 1; i < s.frames.length; i++) {
      assertEquals(s.frames[i]!.offset, s.frames[i - 1]!.offset + s.frames[i - 1]!.length);
    }
  }
});

Deno.test("Mp3FrameSplitter yields the same frames for any chunking", async () => {
  const { files } = await fixtures();
  const bytes = await Deno.readFile(files.find((f) => f.name === "id3.mp3")!.path);
  const whole = scanMp3(bytes)!.frames;
  for (const size of [1, 7, 100, 417, 4096]) {
    const s = new Mp3FrameSplitter();
    const got = [];
    for (let o = 0; o < bytes.length; o += size) got.push(...s.push(bytes.subarray(o, o + size)));
    got.push(...s.end());
    assertEquals(got.map((g) => g.frame), whole, `chunk size ${size}`);
    assertEquals(got.every((g) => g.data.length === g.frame.length), true);
  }
});

Deno.test("scanMp3 finds nothing in non-MP3 bytes", () => {
  assertEquals(scanMp3(new TextEncoder().encode("hello world ".repeat(500))), undefined);
  assertEquals(scanMp3(new Uint8Array(0)), undefined);
});
