import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { AudioDecodeError } from "./errors.ts";
import { readWav, wavHeader, WavWriter } from "./wav.ts";

Deno.test("WavWriter patches the sizes on close and readWav reads the PCM back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/out.wav`;
    const pcm = Int16Array.from({ length: 3000 }, (_, i) => (i * 37) % 65536 - 32768);
    {
      await using w = await WavWriter.create(path, { sampleRate: 22050, channels: 2 });
      await w.write(pcm.subarray(0, 1000));
      await w.write(pcm.subarray(1000));
      assertEquals(w.framesWritten, 1500);
    }
    const back = readWav(await Deno.readFile(path), path);
    assertEquals([back.sampleRate, back.channels, back.frames], [22050, 2, 1500]);
    assertEquals(back.pcm, pcm);
    const w2 = await WavWriter.create(`${dir}/x.wav`, { sampleRate: 8000, channels: 1 });
    await w2.close();
    await w2.close(); // idempotent
    await assertRejects(() => w2.write(new Int16Array(2)), Error, "closed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readWav rejects non-16-bit PCM with a clear message", () => {
  const h = wavHeader(44100, 2, 0);
  new DataView(h.buffer).setUint16(34, 24, true); // 24-bit
  const e = assertThrows(() => readWav(h, "a.wav"), AudioDecodeError);
  assertEquals(
    e.message,
    `Cannot decode "a.wav": unsupported WAV encoding (24-bit PCM); only 16-bit PCM is supported`,
  );
  assertThrows(() => readWav(new Uint8Array(8), "b.wav"), AudioDecodeError, "truncated");
});
