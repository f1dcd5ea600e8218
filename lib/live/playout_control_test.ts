/** Playout control by simulation: no real time, a seeded network, hours of audio. */
import { assert, assertEquals, assertGreater, assertLess } from "@std/assert";
import {
  adjustBlock,
  AutoBuffer,
  DeviceLevel,
  DriftController,
  liveGapWaitMs,
  MAX_CORRECTION,
} from "./playout_control.ts";
import { JitterBuffer } from "../udp/jitter_buffer.ts";

/** A small seeded generator (LCG), uniform in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface SimResult {
  /** Playout delay (buffer level, ms) after the settling time: min and max. */
  minMs: number;
  maxMs: number;
  underruns: number;
  driftPpm: number;
  dropped: number;
  inserted: number;
}

/**
 * A sender capturing 10 ms packets on a clock `ppm` off ours, through a network adding 0–5 ms
 * of jitter, into a listener's device that takes 10 ms blocks on our clock. The level is the
 * audio queued ahead of the device at each block.
 */
function simulate(
  ppm: number,
  seconds: number,
  control: boolean,
  targetMs = 40,
  settleS = 120,
): SimResult {
  const rate = 48_000;
  const block = 480;
  const random = rng(7);
  const controller = new DriftController({ targetMs, sampleRate: rate });
  const packetPeriodS = 0.010 / (1 + ppm / 1e6); // a fast sender's 10 ms are shorter in ours
  // Arrival times of the packets (jitter never reorders here: the queue counts frames).
  let nextPacket = 0;
  const arrivalS = (k: number) => k * packetPeriodS + 0.005 * random();
  let nextArrival = arrivalS(0);
  let queued = 0;
  let underruns = 0;
  let minMs = Infinity;
  let maxMs = -Infinity;
  // Playout starts one target delay after the first packet arrives.
  const start = nextArrival + targetMs / 1000;
  const blocks = Math.round(seconds * 100);
  for (let b = 0; b < blocks; b++) {
    const now = start + b * 0.010;
    while (nextArrival <= now) {
      queued += block;
      nextArrival = arrivalS(++nextPacket);
    }
    const delta = control ? controller.update(queued, block) : 0;
    const need = block + delta;
    if (queued < need) {
      underruns++;
      queued = 0;
    } else {
      queued -= need;
    }
    if (now - start >= settleS) {
      const ms = (queued + block) * 1000 / rate; // level before this block was taken, roughly
      minMs = Math.min(minMs, ms);
      maxMs = Math.max(maxMs, ms);
    }
  }
  return {
    minMs,
    maxMs,
    underruns,
    driftPpm: controller.driftPpm,
    dropped: controller.dropped,
    inserted: controller.inserted,
  };
}

Deno.test("drift: a sender clock 0.01 % fast keeps the listener's delay within ±10 ms of 40 ms over a simulated hour", () => {
  const r = simulate(100, 3600, true);
  assertGreater(r.minMs, 30, JSON.stringify(r));
  assertLess(r.maxMs, 50, JSON.stringify(r));
  assertEquals(r.underruns, 0);
  assert(Math.abs(r.driftPpm - 100) < 10, `drift measured ${r.driftPpm} ppm`);
  // The correction matches the drift: 100 ppm of 3600 s × 48 kHz = 17 280 frames net, give or
  // take the start (the level settling from the pre-fill to the target) and the wobble.
  const net = r.dropped - r.inserted;
  assert(Math.abs(net - 17_280) < 3000, `${r.dropped} dropped, ${r.inserted} inserted`);
});

Deno.test("drift: a sender clock 0.01 % slow is corrected by inserts, without underruns", () => {
  const r = simulate(-100, 3600, true);
  assertGreater(r.minMs, 30, JSON.stringify(r));
  assertLess(r.maxMs, 50, JSON.stringify(r));
  assertEquals(r.underruns, 0);
  assert(Math.abs(r.driftPpm + 100) < 10, `drift measured ${r.driftPpm} ppm`);
});

Deno.test("drift: without correction the same hour's delay grows by ~360 ms (the test's control)", () => {
  const r = simulate(100, 3600, false);
  assertGreater(r.maxMs, 300, JSON.stringify(r));
});

Deno.test("drift: the correction never exceeds ±0.05 % (a 0.1 % drift is only halved)", () => {
  const r = simulate(1000, 600, true, 40, 0);
  // At most one frame in 2000 dropped: 600 s × 48 kHz × 0.0005 = 14 400.
  assert(r.dropped <= 600 * 48_000 * MAX_CORRECTION + 1, `${r.dropped} dropped`);
});

Deno.test("drift: without a target the controller keeps the level the stream settled at", () => {
  const c = new DriftController({ sampleRate: 48_000 });
  let level = 70 * 48;
  let acc = 0;
  for (let b = 0; b < 360_000; b++) {
    acc += 480 * (1 + 100e-6); // the sender 0.01 % fast
    const arrived = Math.floor(acc);
    acc -= arrived;
    level += arrived;
    level -= 480 + c.update(level, 480);
  }
  // The level is read with the block about to be taken in it: 70 + 10 ms.
  assert(Math.abs(c.targetFrames / 48 - 80) < 1, `latched ${c.targetFrames / 48} ms`);
  assert(Math.abs(level / 48 - 70) < 3, `level ${level / 48} ms after an hour`);
});

Deno.test("adjustBlock drops or inserts exactly one frame, with a step no larger than the signal's", () => {
  const stereo = new Int16Array(960 * 2);
  for (let i = 0; i < 960; i++) {
    stereo[2 * i] = Math.round(10000 * Math.sin(i / 20));
    stereo[2 * i + 1] = -stereo[2 * i]!;
  }
  const maxStep = (x: Int16Array) => {
    let m = 0;
    for (let i = 2; i < x.length; i += 2) m = Math.max(m, Math.abs(x[i]! - x[i - 2]!));
    return m;
  };
  const dropped = adjustBlock(stereo, 2, 1);
  const inserted = adjustBlock(stereo, 2, -1);
  assertEquals(dropped.length, stereo.length - 2);
  assertEquals(inserted.length, stereo.length + 2);
  assert(maxStep(dropped) <= 2 * maxStep(stereo));
  assert(maxStep(inserted) <= maxStep(stereo));
  assertEquals(adjustBlock(stereo, 2, 0), stereo);
});

Deno.test("--buffer auto picks the smallest size with under 0.05 % simulated underruns, capped", () => {
  const choose = (jitterMs: (r: () => number) => number) => {
    const random = rng(3);
    const auto = new AutoBuffer();
    for (let k = 0; k < 30_000; k++) {
      const capture = k * 10_000;
      auto.onPacket(capture, capture + 2_000 + jitterMs(random) * 1000);
    }
    return auto.targetMs;
  };
  // Loopback: under 3 ms of jitter.
  assertEquals(choose((r) => 3 * r()), 5);
  // A LAN with 0–12 ms and a rare (0.02 %) 50 ms spike: the spikes are under the bound.
  assertEquals(choose((r) => (r() < 0.0002 ? 50 : 12 * r())), 15);
  // 1 % of packets 25 ms late: too many for 20 ms, so 30 ms.
  assertEquals(choose((r) => (r() < 0.01 ? 25 : 5 * r())), 30);
  // Chaos (up to 1 s): capped at the largest size, not grown without limit.
  assertEquals(choose((r) => 1000 * r()), 200);
});

Deno.test("drift: stale audio above maxStartMs while settling is skipped whole, and not latched as the delay", () => {
  const c = new DriftController({ sampleRate: 48_000, maxStartMs: 100, settleS: 0.5 });
  // The output opened late: 300 ms came at once. Blocks are skipped until the level is under.
  let level = 48 * 300;
  let skippedBlocks = 0;
  for (let i = 0; i < 100; i++) {
    const d = c.update(level, 480);
    if (d === 480) {
      skippedBlocks++;
      level -= 480; // a skipped block leaves the queue without being played
    }
    // Otherwise the block played and a new one arrived: the level holds.
  }
  // Skipped while what is left after the block is above 100 ms: (300 − 110) / 10 blocks.
  assertEquals(skippedBlocks, 19);
  assertEquals(c.skipped, 19 * 480);
  assertEquals(
    adjustBlock(new Int16Array(960), 2, 480).length,
    0,
    "a skipped block writes nothing",
  );
  // Latched at the level left, and past settling nothing more is skipped.
  for (let i = 0; i < 200; i++) c.update(level, 480);
  assert(c.targetMs !== undefined && Math.abs(c.targetMs - level / 48) < 1, String(c.targetMs));
  assertEquals(c.update(48 * 500, 480) === 480, false);
});

Deno.test("DeviceLevel: a device taking 50 ms at a time shows the drift that its raw queue, read as packets arrive, hides", () => {
  // A sender 0.01 % slow: packets every 10.001 ms; the device reads 2400 frames every 50 ms on
  // our clock; a timer reads its counter every 3 ± 1 ms (seeded) on our clock too.
  const rate = 48_000;
  const random = rng(3);
  const level = new DeviceLevel(rate);
  const consumedAt = (t: number) => Math.floor(t / 0.05) * 2400; // the staircase
  let written = 9600; // 200 ms to start
  let timer = 0;
  const raw: number[] = [];
  const smooth: number[] = [];
  for (let k = 0; k < 2500; k++) {
    const t = k * 0.010 * (1 + 100e-6);
    for (; timer < t; timer += 0.002 + 0.002 * random()) level.observe(consumedAt(timer), timer);
    written += 480;
    const consumed = consumedAt(t);
    raw.push(written - consumed);
    smooth.push(level.levelFrames(written - consumed, consumed, t));
  }
  // Averages over the first and the last 5 s (500 packets), in ms.
  const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
  const trend = (x: number[]) => (mean(x.slice(-500)) - mean(x.slice(0, 500))) / 48;
  const truth = -(2500 - 500) * 0.010 * 100e-6 * 1000; // −2.0 ms between the windows' centres
  assertLess(Math.abs(trend(smooth) - truth), 0.5, `DeviceLevel trend ${trend(smooth)} ms`);
  // The raw queue, read at a phase sliding with the drift, does not see it.
  assertLess(Math.abs(trend(raw)), 0.3, `raw trend ${trend(raw)} ms`);
});

Deno.test("drift: after latching, a stall's backlog above maxExcessMs is skipped back to the target at once, a small excess is left to the ±0.05 %", () => {
  const c = new DriftController({ sampleRate: 48_000, targetMs: 40, maxExcessMs: 40 });
  let level = 48 * 40;
  for (let i = 0; i < 100; i++) c.update(level, 480);
  // The device stalled 150 ms: the level jumped to 190 ms.
  level = 48 * 190;
  let skippedBlocks = 0;
  for (let i = 0; i < 100; i++) {
    if (c.update(level, 480) === 480) {
      skippedBlocks++;
      level -= 480;
    }
  }
  // Skipped while what is left after the block is more than 40 ms above the target.
  assertEquals(skippedBlocks, 10);
  assertEquals(c.skipped, 4800);
  // 30 ms above: no whole blocks, single frames only.
  const d = new DriftController({ sampleRate: 48_000, targetMs: 40, maxExcessMs: 40 });
  for (let i = 0; i < 100; i++) assert(d.update(48 * 70, 480) <= 1);
  assertEquals(d.skipped, 0);
  assertGreater(d.dropped, 0);
});

Deno.test("liveGapWaitMs: a live stream's hole is declared lost before the device's queue runs dry", () => {
  // Half of what the buffer holds above one device period (livePeriodMs: buffer / 2, ≤ 100).
  assertEquals(liveGapWaitMs(40), 10);
  assertEquals(liveGapWaitMs(300), 100);
  assertEquals(liveGapWaitMs(0), 0);
  const packet = (seq: number, arrivalMs: number) => ({
    seq,
    timestampUs: seq * 10_000,
    flags: 0,
    payload: new Uint8Array(1),
    arrivalMs,
  });
  for (const [gapWait, lostAtMs] of [[undefined, 40], [liveGapWaitMs, 10]] as const) {
    const jitter = new JitterBuffer({ bufferMs: 40 });
    jitter.gapWaitMs = gapWait;
    jitter.insert(packet(0, 0));
    assertEquals(jitter.next(40)?.kind, "packet"); // started after its 40 ms
    jitter.insert(packet(2, 50)); // 1 is lost
    assertEquals(jitter.next(50 + lostAtMs - 1), undefined, "still waiting for 1");
    assertEquals(jitter.next(50 + lostAtMs), {
      kind: "gap",
      fromSeq: 1,
      toSeq: 2,
      resumeTimestampUs: 20_000,
    });
  }
});
