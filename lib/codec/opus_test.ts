import { assert, assertEquals, assertGreaterOrEqual, assertThrows } from "@std/assert";
import { OpusDecoder, OpusEncoder, opusPacketSamples } from "./opus.ts";
import { Resampler } from "./resample.ts";
import { CodecLibraryError, OpusError } from "./errors.ts";
import {
  concatF32,
  concatI16,
  correlation,
  ffmpegDecodeF32,
  peak,
  rms,
  songPath,
  stereoTones,
  toneAmplitude,
} from "./_test_util.ts";

const RATE = 48_000;

/** Encodes interleaved float in whole frames; returns the packets. */
function encodeAll(enc: OpusEncoder, pcm: Float32Array | Int16Array): Uint8Array[] {
  const step = enc.frameSize * enc.channels;
  const packets: Uint8Array[] = [];
  for (let at = 0; at + step <= pcm.length; at += step) {
    packets.push(enc.encode(pcm.subarray(at, at + step)));
  }
  return packets;
}

/** One channel of interleaved samples, as float ±1. */
function channel(x: ArrayLike<number>, channels: number, c: number, scale = 1): Float32Array {
  const out = new Float32Array(Math.floor(x.length / channels));
  for (let i = 0; i < out.length; i++) out[i] = x[i * channels + c]! * scale;
  return out;
}

/** The lag (0 ... maxLag) at which `y` best matches `x`. */
function bestLag(x: Float32Array, y: Float32Array, maxLag: number, n: number): number {
  let best = 0, bestC = -2;
  for (let lag = 0; lag <= maxLag; lag++) {
    const c = correlation(x, 4800, y, 4800 + lag, n);
    if (c > bestC) [best, bestC] = [lag, c];
  }
  return best;
}

Deno.test("Opus round trip of a stereo tone keeps frequency and level (aligned by OPUS_GET_LOOKAHEAD)", async () => {
  using enc = await OpusEncoder.create({ channels: 2, bitrate: 128_000 });
  using dec = await OpusDecoder.create({ channels: 2 });
  assertEquals(enc.frameSize, 960);
  assertEquals(enc.bitrate, 128_000);
  assert(enc.lookahead > 0 && enc.lookahead < 960, `lookahead ${enc.lookahead}`);
  const src = stereoTones(RATE, 2, { freq: 1000, amp: 0.5 }, { freq: 440, amp: 0.25 });
  const packets = encodeAll(enc, src);
  assertEquals(packets.length, 100);
  const out = concatI16(packets.map((p) => dec.decode(p)));
  assertEquals(out.length, src.length, "every packet decodes to its full 20 ms");

  for (const [c, freq, amp] of [[0, 1000, 0.5], [1, 440, 0.25]] as const) {
    const x = channel(src, 2, c);
    const y = channel(out, 2, c, 1 / 32768);
    // A tone repeats every period, so the delay itself is measured on the song below.
    const lag = enc.lookahead;
    const corr = correlation(x, 4800, y, 4800 + lag, 48_000);
    assertGreaterOrEqual(corr, 0.999, `channel ${c}: correlation ${corr}`);
    const body = y.subarray(4800, 4800 + 48_000);
    const levelDb = 20 * Math.log10(toneAmplitude(body, 1, 0, RATE, freq) / amp);
    assert(Math.abs(levelDb) < 0.5, `channel ${c}: level ${levelDb.toFixed(2)} dB`);
    // Frequency from zero crossings over 1 s: ±1 Hz.
    let crossings = 0;
    for (let i = 1; i < body.length; i++) if ((body[i - 1]! < 0) !== (body[i]! < 0)) crossings++;
    assert(Math.abs(crossings / 2 - freq) <= 1, `channel ${c}: ${crossings / 2} Hz`);
  }
});

Deno.test("Opus 10 ms frames: 480 samples per packet, mono round trip correlates ≥ 0.99", async () => {
  using enc = await OpusEncoder.create({ channels: 1, frameMs: 10, bitrate: 64_000 });
  using dec = await OpusDecoder.create({ channels: 1 });
  assertEquals(enc.frameSize, 480);
  const src = new Int16Array(RATE);
  for (let i = 0; i < src.length; i++) {
    src[i] = Math.round(12000 * Math.sin(2 * Math.PI * 700 * i / RATE));
  }
  const packets = encodeAll(enc, src);
  assertEquals(packets.length, 100);
  for (const p of packets) assertEquals(opusPacketSamples(p), 480);
  const out = concatI16(packets.map((p) => dec.decode(p)));
  assertEquals(out.length, src.length);
  const corr = correlation(src, 4800, out, 4800 + enc.lookahead, 38_400);
  assertGreaterOrEqual(corr, 0.99, `correlation ${corr}`);
});

Deno.test("Opus on a real song (44.1 kHz FLAC → Resampler → Opus): delay = lookahead, correlation ≥ 0.99, bitrate as set", async () => {
  const input = await ffmpegDecodeF32(songPath("06-harbour-chorale.flac"));
  using rs = new Resampler({ inRate: 44_100, inChannels: 2 });
  const pcm = concatF32([rs.process(input), rs.flush()]);
  const seconds = pcm.length / 2 / RATE;
  for (const bitrate of [128_000, 64_000]) {
    using enc = await OpusEncoder.create({ channels: 2, bitrate });
    using dec = await OpusDecoder.create({ channels: 2 });
    const packets = encodeAll(enc, pcm);
    const kbps = packets.reduce((n, p) => n + p.length, 0) * 8 / (packets.length * 0.02) / 1000;
    assert(Math.abs(kbps / (bitrate / 1000) - 1) < 0.15, `${bitrate}: ${kbps.toFixed(1)} kbit/s`);
    const out = concatI16(packets.map((p) => dec.decode(p)));
    assertEquals(out.length, packets.length * 960 * 2);
    for (const c of [0, 1]) {
      const x = channel(pcm, 2, c);
      const y = channel(out, 2, c, 1 / 32768);
      // Music does not repeat: the best alignment is exactly the encoder's lookahead.
      assertEquals(bestLag(x, y, 2000, 96_000), enc.lookahead, "codec delay = OPUS_GET_LOOKAHEAD");
      const n = Math.floor((seconds - 1) * RATE);
      const corr = correlation(x, 0, y, enc.lookahead, n);
      assertGreaterOrEqual(corr, bitrate === 128_000 ? 0.99 : 0.98, `${bitrate} ch ${c}: ${corr}`);
    }
  }
});

Deno.test("Opus PLC fills a lost frame with bounded, non-clipping audio of the right length, then recovers", async () => {
  using enc = await OpusEncoder.create({ channels: 2 });
  const src = stereoTones(RATE, 1, { freq: 1000, amp: 0.5 }, { freq: 440, amp: 0.5 });
  const packets = encodeAll(enc, src);
  using clean = await OpusDecoder.create({ channels: 2 });
  const ref = packets.map((p) => clean.decode(p));
  using lossy = await OpusDecoder.create({ channels: 2 });
  const lost = 20;
  const got = packets.map((p, i) => i === lost ? lossy.conceal(960) : lossy.decode(p));
  const filled = got[lost]!;
  assertEquals(filled.length, 960 * 2, "a whole 20 ms frame, so the stream stays time-aligned");
  assertEquals(concatI16(got).length, concatI16(ref).length);
  const srcPeak = 0.5 * 32768;
  assert(peak(filled) <= 1.1 * srcPeak, `peak ${peak(filled)} > 1.1 × ${srcPeak}`);
  assert(!filled.includes(32767) && !filled.includes(-32768), "no clipped samples");
  assert(rms(filled) > 0.1 * rms(ref[lost]!), `concealment is not silence (rms ${rms(filled)})`);
  // A few frames later the lossy decoder is back in step with the clean one.
  const c = correlation(got[lost + 3]!, 0, ref[lost + 3]!, 0, 1920);
  assertGreaterOrEqual(c, 0.99, `recovery correlation ${c}`);
});

Deno.test("Opus in-band FEC recovers a lost frame better than PLC; without FEC data it falls back to PLC", async () => {
  // Speech-like signal (200 Hz harmonics, 4 Hz syllables): libopus puts FEC into SILK frames.
  const src = new Int16Array(RATE);
  for (let i = 0; i < src.length; i++) {
    const t = i / RATE;
    let v = 0;
    for (let h = 1; h <= 10; h++) v += Math.sin(2 * Math.PI * 200 * h * t + h) / h;
    src[i] = Math.round(6000 * v * (0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t)));
  }
  const lost = 25;
  const results: Record<string, { plc: number; fec: number; same: boolean }> = {};
  for (const inbandFec of [true, false]) {
    using enc = await OpusEncoder.create({
      channels: 1,
      bitrate: 24_000,
      application: "voip",
      inbandFec,
      expectedLossPercent: 20,
    });
    const packets = encodeAll(enc, src);
    using clean = await OpusDecoder.create({ channels: 1 });
    const ref = packets.map((p) => clean.decode(p))[lost]!;
    using a = await OpusDecoder.create({ channels: 1 });
    using b = await OpusDecoder.create({ channels: 1 });
    for (let i = 0; i < lost; i++) {
      a.decode(packets[i]!);
      b.decode(packets[i]!);
    }
    const plc = a.conceal(960);
    const fec = b.decodeFec(packets[lost + 1]!, 960);
    assertEquals(plc.length, 960);
    assertEquals(fec.length, 960);
    b.decode(packets[lost + 1]!); // the next packet still decodes normally afterwards
    const snr = (y: Int16Array) => {
      let s = 0, e = 0;
      for (let i = 0; i < 960; i++) {
        s += ref[i]! ** 2;
        e += (ref[i]! - y[i]!) ** 2;
      }
      return 10 * Math.log10(s / e);
    };
    results[String(inbandFec)] = {
      plc: snr(plc),
      fec: snr(fec),
      same: plc.every((v, i) => v === fec[i]),
    };
  }
  const on = results["true"]!, off = results["false"]!;
  assert(on.fec >= on.plc + 6, `FEC ${on.fec.toFixed(1)} dB vs PLC ${on.plc.toFixed(1)} dB`);
  assert(off.same, "no FEC in the stream: decodeFec conceals exactly like conceal()");
});

Deno.test("Opus hostile and bad input: clear typed errors, disposal", async () => {
  await assertRejectsRange(() => OpusEncoder.create({ bitrate: 1000 }), "bitrate");
  await assertRejectsRange(() => OpusEncoder.create({ channels: 3 as 2 }), "channels");
  await assertRejectsRange(() => OpusEncoder.create({ frameMs: 15 as 20 }), "frame");
  let enc: OpusEncoder;
  {
    using e = await OpusEncoder.create();
    enc = e;
    assertThrows(() => e.encode(new Float32Array(100)), RangeError, "must have 1920 samples");
    assertThrows(() => e.setBitrate(600_000), RangeError, "bitrate");
    e.setBitrate(96_000);
    assertEquals(e.bitrate, 96_000);
  }
  assertThrows(() => enc.encode(new Float32Array(1920)), TypeError, "closed");
  enc.close(); // second close is a no-op
  using dec = await OpusDecoder.create();
  assertThrows(() => dec.decode(new Uint8Array(0)), OpusError, "empty packet");
  // TOC code 3 (frame count follows) with a count of 0: invalid per RFC 6716 §3.2.5.
  const e = assertThrows(() => dec.decode(new Uint8Array([0xff, 0x00])), OpusError);
  assertEquals(e.code, -4);
  assertThrows(() => dec.conceal(1000), RangeError, "multiple of 120");
  // Code 3 without its frame-count byte.
  assertThrows(() => opusPacketSamples(new Uint8Array([0xff])), OpusError, "corrupted");
});

async function assertRejectsRange(fn: () => Promise<unknown>, text: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof RangeError && e.message.includes(text), String(e));
    return;
  }
  throw new Error(`expected a RangeError mentioning ${text}`);
}

Deno.test("Opus without libopus fails with one line naming the Debian package", async () => {
  const code = `
    import { OpusDecoder } from ${JSON.stringify(new URL("./opus.ts", import.meta.url).href)};
    try { await OpusDecoder.create(); } catch (e) {
      console.log(e.name + ": " + e.message + " | " + e.debianPackage);
    }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    env: { SOUNDSOCK_LIBOPUS: "/nonexistent/libopus.so.0", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assertEquals(text.split("\n").length, 1, text);
  assert(text.startsWith(`${CodecLibraryError.name}: Cannot load libopus: `), text);
  assert(text.includes("Install it with: apt-get install libopus0 | libopus0"), text);
});
