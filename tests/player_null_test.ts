/** Null backend: a behaviour check of real-time consumption, not a benchmark. */

import { assert, assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import { listDevices, openPcmSink, Player } from "../lib/audio/mod.ts";

Deno.test({
  name: "the null backend consumes 5 s of audio in 5 s (± 2 %)",
  sanitizeResources: false,
  async fn() {
    await using p = await Player.open({
      backend: "null",
      sampleRate: 48000,
      channels: 2,
      periodMs: 10,
    });
    assertEquals(p.backend, "null");
    const second = new Int16Array(48000 * 2);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await p.write(second, { signal: AbortSignal.timeout(15_000) });
    await p.drain({ signal: AbortSignal.timeout(15_000) });
    const seconds = (performance.now() - t0) / 1000;
    assertAlmostEquals(seconds, 5, 0.1, `took ${seconds} s`);
    assertEquals(p.framesConsumed, 5 * 48000);
    assertEquals(p.underruns, 0);
    assertEquals(p.queuedFrames, 0);
  },
});

Deno.test({
  name: "Player.write waits while the ring is full and honours its abort signal",
  sanitizeResources: false,
  async fn() {
    await using p = await Player.open({
      backend: "null",
      sampleRate: 8000,
      channels: 1,
      ringMs: 200,
    });
    const big = new Int16Array(8000 * 10); // 10 s into a 0.2 s ring
    const ac = new AbortController();
    const writing = p.write(big, { signal: ac.signal });
    // The ring fills immediately; the write must still be pending, bounded by the ring size.
    await new Promise((r) => setTimeout(r, 100));
    assert(p.queuedMs <= 200 && p.queuedMs > 50, `queued ${p.queuedMs} ms`);
    ac.abort(new Error("user stop"));
    await assertRejects(() => writing, Error, "user stop");
    await p.close();
    await p.close(); // idempotent
  },
});

Deno.test("a missing device name gives an error listing the available devices", async () => {
  const err = await assertRejects(() => Player.open({ backend: "null", device: "Headphones 7" }));
  assert(err instanceof Error);
  assertEquals(err.name, "AudioDeviceError");
  assert(err.message.includes('"Headphones 7" not found'), err.message);
  assert(err.message.includes("NULL Playback Device"), err.message);
  const list = await listDevices({ backend: "null" });
  assertEquals(list.playback[0]?.isDefault, true);
});

Deno.test({
  name: "openPcmSink writes a WAV file for --output FILE.wav",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/o.wav`;
      {
        await using sink = await openPcmSink({ output: path, sampleRate: 16000, channels: 1 });
        assertEquals(sink.description, `WAV file ${path}`);
        await sink.write(new Int16Array(16000));
        await sink.drain();
      }
      assertEquals((await Deno.stat(path)).size, 44 + 32000);
      await using dev = await openPcmSink({ backend: "null", sampleRate: 16000, channels: 1 });
      assertEquals(dev.player?.backend, "null");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
