/** The virtual microphones: paced like a device, the file looped sample-exactly. */
import { assertEquals, assertGreater, assertLess, assertRejects, assertThrows } from "@std/assert";
import { FileSource, LiveSourceError, ToneSource } from "./sources.ts";
import { wavHeader } from "../audio/wav.ts";

Deno.test("ToneSource hands out 10 ms blocks paced in real time, capture times 10 ms apart", async () => {
  await using tone = new ToneSource(1000, { blockFrames: 480 });
  const signal = new AbortController().signal;
  const first = await tone.read(signal);
  const blocks = [first!];
  const start = performance.now();
  while (performance.now() - start < 300) blocks.push((await tone.read(signal))!);
  // Not faster than real time: about 30 blocks in 300 ms (a late timer is caught up at once).
  assertLess(blocks.length, 36);
  for (let i = 1; i < blocks.length; i++) {
    assertEquals(blocks[i]!.captureUs - blocks[i - 1]!.captureUs, 10_000);
    assertEquals(blocks[i]!.pcm.length, 480);
  }
  // Phase-continuous across blocks: no step larger than one sample's slope.
  const all = blocks.flatMap((b) => [...b.pcm]);
  for (let i = 1; i < all.length; i++) {
    assertLess(Math.abs(all[i]! - all[i - 1]!), 0.5 * 2 * Math.PI * 1000 / 48_000 + 1e-6);
  }
});

Deno.test("ToneSource refuses a frequency above half the rate", () => {
  assertThrows(
    () => new ToneSource(30_000),
    LiveSourceError,
    "--tone must be between 1 and 24000 Hz",
  );
});

Deno.test("FileSource loops a short file without a gap: the audio repeats with the file's period", async () => {
  // 0.25 s of 48 kHz mono noise (48 kHz: the resampler passes it through).
  const frames = 12_000;
  const pcm = new Int16Array(frames);
  let s = 1;
  for (let i = 0; i < frames; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    pcm[i] = ((s >>> 16) & 0x7fff) - 16384;
  }
  const path = await Deno.makeTempFile({ suffix: ".wav" });
  const data = new Uint8Array(pcm.buffer);
  const bytes = new Uint8Array(44 + data.length);
  bytes.set(wavHeader(48_000, 1, data.length));
  bytes.set(data, 44);
  await Deno.writeFile(path, bytes);
  try {
    await using source = await FileSource.open(path, { channels: 1, blockFrames: 480 });
    const signal = new AbortController().signal;
    const got: number[] = [];
    while (got.length < 3 * frames) got.push(...(await source.read(signal))!.pcm);
    assertGreater(got.length, 2 * frames);
    // Three passes of the same samples, back to back (float of s16: exact).
    for (let i = 0; i < frames; i++) {
      assertEquals(got[i + frames], got[i]);
      assertEquals(got[i + 2 * frames], got[i]);
    }
    assertEquals(Math.round(got[5]! * 32768), pcm[5]);
  } finally {
    await Deno.remove(path);
  }
  await assertRejects(
    () => FileSource.open("/nonexistent.wav"),
    LiveSourceError,
    "Cannot use --input /nonexistent.wav",
  );
});
