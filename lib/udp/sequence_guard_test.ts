import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { type GuardVerdict, SequenceGuard } from "./sequence_guard.ts";

const STEP_US = 20_000; // 20 ms packets

/** Feeds packets seq from..to-1 at their real timestamps; returns the verdict kinds. */
function feed(g: SequenceGuard<number>, from: number, to: number, nowMs: number, base = 0) {
  const kinds: string[] = [];
  for (let s = from; s < to; s++) {
    kinds.push(
      g.check(s >>> 0, base + (s - from) * STEP_US, nowMs + (s - from) * 20, () => s).kind,
    );
  }
  return kinds;
}

Deno.test("SequenceGuard accepts an ordinary stream, reordering, duplicates and loss", () => {
  const g = new SequenceGuard<number>();
  for (let s = 0; s < 100; s++) {
    if (s % 10 === 3) continue; // lost
    assertEquals(g.check(s, s * STEP_US, s * 20, () => s).kind, "accept");
  }
  assertEquals(g.check(3, 3 * STEP_US, 2000, () => 3).kind, "accept"); // late but plausible
  assertEquals(g.check(99, 99 * STEP_US, 2000, () => 99).kind, "accept"); // duplicate
  assertEquals(g.spacingUs, STEP_US);
  assertEquals(g.implausible, 0);
});

Deno.test("SequenceGuard accepts sequence numbers that wrap past 2^32 − 1", () => {
  const g = new SequenceGuard<number>();
  const start = 2 ** 32 - 5;
  for (let i = 0; i < 10; i++) {
    assertEquals(g.check((start + i) >>> 0, 1e9 + i * STEP_US, i * 20, () => i).kind, "accept");
  }
});

Deno.test("hostile: SequenceGuard drops one forged sequence jump or huge timestamp", () => {
  const g = new SequenceGuard<number>();
  feed(g, 0, 50, 0);
  assertEquals(g.check(49 + 1_000_000, 50 * STEP_US, 1000, () => -1).kind, "implausible");
  assertEquals(g.check(50, 2 ** 52, 1000, () => -1).kind, "implausible");
  assertEquals(g.check(50, 50 * STEP_US + 5e6, 1000, () => -1).kind, "implausible"); // 5 s ahead
  // The real stream goes on untouched.
  assertEquals(feed(g, 50, 60, 1000, 50 * STEP_US), Array(10).fill("accept"));
  assertEquals(g.implausible, 3);
});

Deno.test("hostile: SequenceGuard seeded for an on-demand stream drops a forged first packet", () => {
  const g = new SequenceGuard<number>();
  g.expect(0, 0);
  assertEquals(g.check(777_777, 0, 0, () => -1).kind, "implausible");
  assertEquals(g.check(0, 2 ** 50, 0, () => -1).kind, "implausible");
  assertEquals(feed(g, 0, 5, 1), Array(5).fill("accept"));
});

Deno.test("hostile: a forged run cannot re-synchronise a stream that is still flowing", () => {
  const g = new SequenceGuard<number>();
  feed(g, 0, 100, 0);
  // Interleave: real packets every 20 ms, forged consistent packets in between.
  for (let i = 0; i < 50; i++) {
    const now = 2000 + i * 20;
    assertEquals(g.check(100 + i, (100 + i) * STEP_US, now, () => i).kind, "accept");
    for (let k = 0; k < 8; k++) {
      const f = 5_000_000 + i * 8 + k;
      assertEquals(g.check(f, f * STEP_US, now + 1, () => -1).kind, "implausible");
    }
  }
});

Deno.test("SequenceGuard re-synchronises on a consistent run after the old stream went quiet", () => {
  const g = new SequenceGuard<number>();
  feed(g, 0, 100, 0);
  // After 2 s of silence the stream comes back far away (a long outage, a sender that jumped).
  const base = 3_000_000;
  const verdicts: GuardVerdict<number>[] = [];
  for (let s = 0; s < 4; s++) {
    verdicts.push(g.check(base + s, 9e9 + s * STEP_US, 4000 + s * 20, () => s));
  }
  assertEquals(verdicts.map((v) => v.kind), [
    "implausible",
    "implausible",
    "implausible",
    "resync",
  ]);
  const last = verdicts[3]!;
  assertEquals(last.kind === "resync" ? last.replay : [], [0, 1, 2, 3]);
  assertEquals(g.implausible, 0);
  assertEquals(g.resyncs, 1);
  assertEquals(feed(g, base + 4, base + 20, 4100, 9e9 + 4 * STEP_US), Array(16).fill("accept"));
});

Deno.test("hostile: inconsistent implausible packets never re-synchronise (property)", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: 2 ** 32 - 1 }),
          fc.integer({ min: 0, max: 2 ** 53 - 1 }),
        ),
        {
          maxLength: 200,
        },
      ),
      (forged) => {
        const g = new SequenceGuard<number>();
        feed(g, 0, 20, 0);
        let resynced = 0;
        let prev: [number, number] | undefined;
        for (const [seq, ts] of forged) {
          // Keep only packets implausible against the stream and against the previous one.
          const far = Math.abs((seq - 19) | 0) > 2000 && Math.abs(ts - 19 * STEP_US) > 1e10;
          const apart = !prev || Math.abs((seq - prev[0]) | 0) > 64 ||
            Math.abs(ts - prev[1]) > 1e11;
          if (!far || !apart) continue;
          prev = [seq, ts];
          if (g.check(seq, ts, 10_000, () => 0).kind === "resync") resynced++;
        }
        return resynced === 0;
      },
    ),
    { numRuns: 300 },
  );
});
