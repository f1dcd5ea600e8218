import { assert, assertEquals } from "@std/assert";
import { MediaPlayout, PCM_FADE_MS, pcmFadeFrames } from "./playout.ts";
import type { StreamInfo } from "../wire/messages.ts";

const RATE = 48_000;
const CH = 2;
/** 20 ms packets, as the PCM station and on-demand PCM send them (in frames). */
const PACKET = 960;

/** A stereo sine (left) and its inverse (right) at `amp`, from frame `from`, as s16le bytes. */
function packet(from: number, amp: number, hz: number): Uint8Array {
  const pcm = new Int16Array(PACKET * CH);
  for (let i = 0; i < PACKET; i++) {
    const v = Math.round(amp * Math.sin(2 * Math.PI * hz * (from + i) / RATE));
    pcm[i * 2] = v;
    pcm[i * 2 + 1] = -v;
  }
  return new Uint8Array(pcm.buffer);
}

/** A playout whose output keeps a copy of every block written into `chunks`. */
function recordingPlayout(chunks: Int16Array[]): MediaPlayout {
  return new MediaPlayout({
    openOutput: () =>
      Promise.resolve({
        write: (pcm: Int16Array) => {
          chunks.push(pcm.slice());
          return Promise.resolve();
        },
      }),
  });
}

/** Plays packets 0..count-1 with the ones in `lost` concealed; returns everything written. */
async function play(
  count: number,
  lost: Set<number>,
  amp: number,
  hz: number,
  info: Partial<StreamInfo> = {},
): Promise<{ pcm: Int16Array; concealed: number }> {
  const chunks: Int16Array[] = [];
  using playout = recordingPlayout(chunks);
  await playout.startStream({
    title: "test",
    codec: "pcm_s16le",
    sampleRate: RATE,
    channels: CH,
    durationMs: count * 20,
    ...info,
  });
  for (let p = 0; p < count; p++) {
    if (lost.has(p)) await playout.gap(PACKET / RATE * 1e6);
    else await playout.media(packet(p * PACKET, amp, hz));
  }
  await playout.finishStream();
  const pcm = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    pcm.set(c, at);
    at += c.length;
  }
  return { pcm, concealed: playout.framesConcealed };
}

/** Largest step between consecutive samples of one channel. */
function maxStep(pcm: Int16Array, channel: number, from = 0, to = pcm.length / CH): number {
  let m = 0;
  for (let i = Math.max(1, from); i < to; i++) {
    m = Math.max(m, Math.abs(pcm[i * CH + channel]! - pcm[(i - 1) * CH + channel]!));
  }
  return m;
}

Deno.test("PCM gap: fades out and in over PCM_FADE_MS, no step beyond the fade's slope, same length", async () => {
  const fade = pcmFadeFrames(RATE);
  assertEquals(fade, Math.round(PCM_FADE_MS * RATE / 1000));
  // 220 Hz near full scale: the signal's own steps are small, a step to silence is not.
  const amp = 30_000;
  const { pcm: clean } = await play(10, new Set(), amp, 220);
  const { pcm, concealed } = await play(10, new Set([3, 6, 7]), amp, 220);
  assertEquals(pcm.length, clean.length); // the stream keeps its length
  assertEquals(concealed, 3 * PACKET);
  // Fade-out: ≤ |last sample| / fade a step; fade-in: the signal's step plus amp / fade.
  const bound = maxStep(clean, 0) + Math.ceil(32_768 / fade) + 1;
  for (const c of [0, 1]) {
    const step = maxStep(pcm, c);
    assert(step <= bound, `channel ${c}: step ${step} > ${bound}`);
  }
  // The gap is silent after the fade-out, and the audio is untouched after the fade-in.
  for (let i = 3 * PACKET + fade; i < 4 * PACKET; i++) assertEquals(pcm[i * CH], 0);
  for (let i = 4 * PACKET + fade; i < 6 * PACKET; i++) assertEquals(pcm[i * CH], clean[i * CH]);
  for (let i = 0; i < 3 * PACKET; i++) assertEquals(pcm[i * CH + 1], clean[i * CH + 1]);
  // The fade-out starts from the last sample played, not from 0.
  const last = clean[(3 * PACKET - 1) * CH]!;
  assert(Math.abs(pcm[3 * PACKET * CH]! - last) <= Math.ceil(Math.abs(last) / fade) + 1);
});

Deno.test("PCM gap: a loud DC level fades at the stream's own rate (44.1 kHz mono WAV)", async () => {
  const chunks: Int16Array[] = [];
  using playout = recordingPlayout(chunks);
  await playout.startStream({
    title: "cd",
    codec: "pcm_s16le",
    sampleRate: 44_100,
    channels: 1,
    durationMs: 100,
  });
  const n = 441;
  await playout.media(new Uint8Array(Int16Array.from({ length: n }, () => 20_000).buffer));
  await playout.gap(10_000);
  await playout.media(new Uint8Array(Int16Array.from({ length: n }, () => 20_000).buffer));
  const pcm = Int16Array.from(chunks.flatMap((c) => [...c]));
  assertEquals(pcm.length, 3 * n);
  const fade = pcmFadeFrames(44_100);
  assertEquals(fade, 132);
  let step = 0;
  for (let i = 1; i < pcm.length; i++) step = Math.max(step, Math.abs(pcm[i]! - pcm[i - 1]!));
  assert(step <= Math.ceil(20_000 / fade) + 1, `step ${step}`);
});
