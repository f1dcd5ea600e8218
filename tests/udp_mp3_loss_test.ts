/**
 * Issue #9 (D4): an MP3 song on demand over a lossy network. Lost packets are concealed
 * (silence that fades out and in), the frames after a loss whose bit reservoir reached into
 * the lost bytes are concealed too instead of being decoded from stale data into full-scale
 * garbage, and the output keeps the source's length, so a recording stays time-aligned.
 */

import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { EventLog } from "../lib/cli/event_log.ts";
import { Impairment } from "../lib/udp/impairment.ts";
import { playSong } from "../lib/udp/client.ts";
import { ffmpegDecode, MemoryOutput, SONGS_DIR, startServer } from "./_udp_helpers.ts";

const SONG = "04-nocturne.mp3";

function peak(pcm: Int16Array): number {
  let p = 0;
  for (const v of pcm) p = Math.max(p, Math.abs(v));
  return p;
}

/** Largest |a−b| over samples at least `margin` frames away from every concealed range. */
function clearOfGaps(a: Int16Array, b: Int16Array, ranges: [number, number][], margin: number) {
  let d = 0;
  let r = 0;
  const frames = Math.min(a.length, b.length) / 2;
  for (let f = 0; f < frames; f++) {
    while (r < ranges.length && ranges[r]![1] + margin < f) r++;
    if (r < ranges.length && f >= ranges[r]![0] - margin) continue;
    d = Math.max(d, Math.abs(a[2 * f]! - b[2 * f]!), Math.abs(a[2 * f + 1]! - b[2 * f + 1]!));
  }
  return d;
}

/** Frames where the output is exactly zero in runs of at least 500 (the concealed stretches). */
function silentRuns(pcm: Int16Array): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  const frames = pcm.length / 2;
  for (let f = 0; f <= frames; f++) {
    const silent = f < frames && pcm[2 * f] === 0 && pcm[2 * f + 1] === 0;
    if (silent && start < 0) start = f;
    if (!silent && start >= 0) {
      if (f - start >= 500) runs.push([start, f]);
      start = -1;
    }
  }
  return runs;
}

async function lossyMp3(seed: number) {
  {
    await using server = await startServer({ intervalMs: 0 });
    const dir = await Deno.makeTempDir();
    try {
      const logPath = join(dir, "client.jsonl");
      const heard = new MemoryOutput();
      let report;
      {
        using log = await EventLog.open(logPath);
        report = await playSong(server.address, SONG, {
          signal: new AbortController().signal,
          log,
          bufferMs: 150,
          timeoutMs: 3000,
          openOutput: () => Promise.resolve(heard),
          impairment: new Impairment({
            lossPct: 5,
            reorderPct: 0,
            dupPct: 0,
            delayMs: 0,
            jitterMs: 0,
            seed,
          }),
        });
      }
      assertEquals(report.ending, "end");
      assert(report.lost >= 2, `the seed loses packets: ${JSON.stringify(report)}`);
      const reference = await ffmpegDecode(`${SONGS_DIR}${SONG}`);
      const out = heard.samples();
      // Time-aligned: exactly the source's length.
      assertEquals(out.length, reference.length);
      // No garbage: nothing beyond the source's own peak (stale-reservoir frames hit full scale).
      assert(peak(out) <= peak(reference), `peak ${peak(out)} > source ${peak(reference)}`);
      const events = (await Deno.readTextFile(logPath)).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      const playout = events.find((e) => e.event === "playout");
      // Every lost packet (and the frames that depended on it) was concealed, none skipped.
      assert(playout.framesConcealed >= report.lost * 1152, JSON.stringify(playout));
      // Away from the concealed stretches the audio is the source's, sample for sample.
      assert(clearOfGaps(out, reference, silentRuns(out), 3 * 1152) <= 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

Deno.test("udp: MP3 on demand with 5 % loss keeps its length and has no garbage (seed 3)", () =>
  lossyMp3(3));

Deno.test("udp: MP3 on demand with 5 % loss keeps its length and has no garbage (seed 11)", () =>
  lossyMp3(11));
