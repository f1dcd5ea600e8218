import { assert, assertEquals } from "@std/assert";
import { samplesToUs, STATION_RATE, StationClock } from "./clock.ts";
import { OPUS_FRAME_SAMPLES, opusFrameCount, splitOpusPayload, StationEncoder } from "./encoder.ts";
import { expectedOutputFrames } from "../codec/mod.ts";

/** A deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("samplesToUs is exact: 20 ms frames are 20000 µs, an hour is 3.6e9 µs", () => {
  assertEquals(samplesToUs(960), 20_000);
  assertEquals(samplesToUs(300), 6_250);
  assertEquals(samplesToUs(4096), 85_333); // floor(85333.33)
  assertEquals(samplesToUs(STATION_RATE * 3600), 3_600_000_000);
  // A year of samples stays exact.
  const year = STATION_RATE * 86_400 * 365;
  assertEquals(samplesToUs(year), 86_400 * 365 * 1e6);
});

Deno.test("an hour of songs through the station encoder and clock: zero drift", async () => {
  // Songs of random lengths at the sources' rates (22.05 / 44.1 / 48 kHz), resampled lengths
  // as the station computes them, fed gaplessly in blocks of random size, as PCM (the packet
  // cutting and the clock are the same for Opus; PCM keeps an hour fast).
  using enc = await StationEncoder.create<number>({
    codec: "pcm",
    maxPayload: 16_384,
    maxPacketMs: 100,
  });
  const random = rng(3);
  const rates = [22_050, 44_100, 48_000];
  const songStarts: number[] = [];
  const marks: { mark: number; startSample: number; samples: number }[] = [];
  let total = 0;
  let expectedNext = 0;
  let packets = 0;
  const block = new Float32Array(4800 * 2);
  const check = (ps: ReturnType<typeof enc.push>) => {
    for (const p of ps) {
      // Contiguous: each packet starts where the last one ended; the timestamp is the sample
      // count's, not a sum of rounded durations.
      assertEquals(p.startSample, expectedNext);
      expectedNext += p.samples;
      packets++;
      for (const m of p.marks) {
        marks.push({ mark: m, startSample: p.startSample, samples: p.samples });
      }
    }
  };
  for (let song = 0; total < STATION_RATE * 3600; song++) {
    const rate = rates[song % 3]!;
    const sourceFrames = Math.floor((8 + random() * 30) * rate);
    const frames = expectedOutputFrames(sourceFrames, rate);
    songStarts.push(total);
    let left = frames;
    let first = true;
    while (left > 0) {
      const n = Math.min(left, 1 + Math.floor(random() * 4800));
      check(enc.push(block.subarray(0, n * 2), first ? song : undefined));
      first = false;
      left -= n;
    }
    total += frames;
  }
  // Every sample pushed is in a packet except the last partial unit.
  assertEquals(enc.samplesPushed, total);
  assertEquals(enc.samplesEncoded, expectedNext);
  assert(total - enc.samplesEncoded < enc.unitSamples);
  // Every song start is in the packet that holds its first sample.
  assertEquals(marks.length, songStarts.length - (songStarts.at(-1)! >= expectedNext ? 1 : 0));
  for (const m of marks) {
    const at = songStarts[m.mark]!;
    assert(m.startSample <= at && at < m.startSample + m.samples, `song ${m.mark}`);
  }
  assert(packets > 40_000, `${packets} packets`);

  // Pace that hour against a simulated wall clock whose timers fire 0–40 ms late (and one
  // 1.5 s stall): packets go out when due or, when late, at once; the delivered sample count
  // never drifts from the clock.
  const clock = new StationClock(1000);
  let now = 1000;
  let maxLead = 0;
  let maxLag = 0;
  for (let start = 0; start < expectedNext; start += enc.unitSamples) {
    const wait = clock.waitMs(start, now);
    if (wait > 0) now += wait + random() * 40; // a late timer
    if (start === enc.unitSamples * 20_000) now += 1500; // a stall, caught up
    // Sent now: the live edge (samples due by the wall clock) vs the samples delivered.
    const due = clock.samplesDue(now);
    maxLead = Math.max(maxLead, start - due);
    maxLag = Math.max(maxLag, due - start);
  }
  assertEquals(clock.resets, 0);
  // Never sent early; never more than the worst timer lateness + the stall behind.
  assert(maxLead <= 0, `sent ${maxLead} samples early`);
  assert(maxLag <= (1500 + 40) * 48 + 1, `lagged ${maxLag} samples`);
  // After the hour: the last packet was due at exactly origin + samples / 48 ms.
  assertEquals(clock.dueAtMs(STATION_RATE * 3600), 1000 + 3_600_000);
  // And the catch-up left no residue: the final lag is one timer's lateness at most.
  const endDue = clock.samplesDue(now);
  assert(endDue - (expectedNext - enc.unitSamples) <= 40 * 48 + enc.unitSamples, "drift at end");
});

Deno.test("StationClock moves its origin only after a stall longer than maxLateMs", () => {
  const clock = new StationClock(0, { maxLateMs: 2000 });
  assertEquals(clock.waitMs(48_000, 500), 500); // due at 1000 ms
  assertEquals(clock.waitMs(48_000, 2900), 0); // 1.9 s late: catch up
  assertEquals(clock.resets, 0);
  assertEquals(clock.waitMs(48_000, 3100), 0); // 2.1 s late: re-anchored
  assertEquals(clock.resets, 1);
  assertEquals(clock.dueAtMs(48_000), 3100);
  assertEquals(clock.dueAtMs(96_000), 4100);
});

Deno.test("Opus station payloads: 3 × 20 ms frames per UDP datagram, ≤ maxPayload, splittable", async () => {
  using enc = await StationEncoder.create<string>({
    codec: "opus",
    maxPayload: 1200,
    maxPacketMs: 60,
    bitrate: 128_000,
  });
  const second = new Float32Array(48_000 * 2);
  for (let i = 0; i < 48_000; i++) {
    second[2 * i] = 0.5 * Math.sin(2 * Math.PI * 440 * i / 48_000);
    second[2 * i + 1] = 0.5 * Math.sin(2 * Math.PI * 660 * i / 48_000);
  }
  const packets = [...enc.push(second, "a"), ...enc.push(second, "b")];
  // 2 s = 100 frames: packets of 3 frames (2 when 3 would exceed 1200 bytes), the rest waiting.
  const frames = packets.reduce((n, p) => n + p.samples / OPUS_FRAME_SAMPLES, 0);
  assertEquals(enc.samplesEncoded, frames * OPUS_FRAME_SAMPLES);
  assert(frames >= 98 && frames <= 99, `${frames} frames`);
  let full = 0;
  let at = 0;
  for (const p of packets) {
    assertEquals(p.startSample, at);
    at += p.samples;
    assert(p.payload.length <= 1200);
    const n = p.samples / OPUS_FRAME_SAMPLES;
    assert(n >= 1 && n <= 3);
    if (n === 3) full++;
    assertEquals(splitOpusPayload(p.payload).length, n);
    assertEquals(opusFrameCount(p.payload), n);
  }
  assert(full >= packets.length - 2, `${full} of ${packets.length} packets hold 3 frames`);
  assertEquals(packets[0]!.marks, ["a"]);
  // "b" starts at sample 48000: its packet holds that sample.
  const b = packets.find((p) => p.marks.includes("b"))!;
  assert(b.startSample <= 48_000 && 48_000 < b.startSample + b.samples);
});
