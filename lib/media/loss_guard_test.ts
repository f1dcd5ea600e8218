import { assert, assertEquals } from "@std/assert";
import { LossGuard, RECOVERY_FRAMES } from "./loss_guard.ts";

const frame = (amp: number) => Int16Array.from({ length: 960 * 2 }, (_, i) => (i % 2 ? -amp : amp));
const peak = (pcm: Int16Array) => pcm.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

Deno.test("LossGuard passes frames decoded without loss untouched", () => {
  const g = new LossGuard(2);
  for (const amp of [1000, 30_000, 500]) assertEquals(g.decoded(frame(amp)), frame(amp));
  assertEquals(g.limited, 0);
});

Deno.test("LossGuard bounds a concealed frame and the recovery frames by the recent peak", () => {
  const g = new LossGuard(2);
  for (let i = 0; i < 10; i++) g.decoded(frame(1000));
  // CELT PLC overshooting: louder than anything recently decoded.
  assert(peak(g.concealed(frame(8000))) <= 1000);
  for (let i = 0; i < RECOVERY_FRAMES; i++) assert(peak(g.decoded(frame(6000))) <= 1000);
  assertEquals(g.limited, 1 + RECOVERY_FRAMES);
  // Then the gain ramps back to 1 over one frame, and frames pass untouched again.
  const ramp = g.decoded(frame(2000));
  assert(peak(ramp.subarray(0, 2)) < 2000 && peak(ramp.subarray(ramp.length - 2)) === 2000);
  assertEquals(g.decoded(frame(2000)), frame(2000));
});

Deno.test("LossGuard leaves a concealed frame quieter than the recent peak alone", () => {
  const g = new LossGuard(2);
  for (let i = 0; i < 10; i++) g.decoded(frame(5000));
  assertEquals(g.concealed(frame(3000)), frame(3000));
  assertEquals(g.limited, 0);
});
