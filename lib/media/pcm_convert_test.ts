import { assert, assertEquals } from "@std/assert";
import { PcmConverter } from "./pcm_convert.ts";

function sine(rate: number, hz: number, frames: number): Int16Array {
  return Int16Array.from(
    { length: frames },
    (_, i) => Math.round(10000 * Math.sin(2 * Math.PI * hz * i / rate)),
  );
}

Deno.test("PcmConverter passes equal formats through untouched", () => {
  const c = new PcmConverter({ sampleRate: 44100, channels: 2 }, {
    sampleRate: 44100,
    channels: 2,
  });
  const pcm = Int16Array.of(1, 2, 3, 4);
  assertEquals(c.convert(pcm), pcm);
});

Deno.test("PcmConverter resamples 48 kHz to 44.1 kHz across chunk borders with the right length and pitch", () => {
  const input = sine(48000, 1000, 48000);
  const c = new PcmConverter({ sampleRate: 48000, channels: 1 }, {
    sampleRate: 44100,
    channels: 1,
  });
  const parts: Int16Array[] = [];
  for (let i = 0; i < input.length; i += 1234) parts.push(c.convert(input.subarray(i, i + 1234)));
  const out = Int16Array.from(parts.flatMap((p) => [...p]));
  assert(Math.abs(out.length - 44100) <= 2, `length ${out.length}`);
  // Compare against the ideal 1 kHz sine at 44.1 kHz: linear interpolation error stays small.
  const ideal = sine(44100, 1000, out.length);
  const maxErr = Math.max(...out.map((v, i) => Math.abs(v - ideal[i]!)));
  assert(maxErr < 200, `max error ${maxErr}`);
});

Deno.test("PcmConverter mixes stereo to mono and spreads mono to stereo", () => {
  const down = new PcmConverter({ sampleRate: 8000, channels: 2 }, {
    sampleRate: 8000,
    channels: 1,
  });
  assertEquals([...down.convert(Int16Array.of(100, 300, -50, -150))], [200, -100]);
  const up = new PcmConverter({ sampleRate: 8000, channels: 1 }, { sampleRate: 8000, channels: 2 });
  assertEquals([...up.convert(Int16Array.of(7, 9))], [7, 7, 9, 9]);
});
