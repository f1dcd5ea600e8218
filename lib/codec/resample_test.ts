import { assert, assertEquals, assertGreaterOrEqual, assertThrows } from "@std/assert";
import { readWav } from "../audio/wav.ts";
import { expectedOutputFrames, floatToS16, Resampler } from "./resample.ts";
import { CodecLibraryError } from "./errors.ts";
import {
  concatF32,
  ffmpegDecodeF32,
  ffmpegF32,
  ffmpegSoxr48,
  peak,
  snrDb,
  songPath,
  toneAmplitude,
} from "./_test_util.ts";

/** Feeds `input` through a resampler in blocks of varying size (7, 1000, 4410, ... frames). */
function resampleAll(rs: Resampler, input: Int16Array | Float32Array): Float32Array {
  const sizes = [7, 1000, 4410, 1, 333, 8192];
  const parts: Float32Array[] = [];
  let at = 0;
  for (let i = 0; at < input.length; i++) {
    const n = sizes[i % sizes.length]! * rs.inChannels;
    parts.push(rs.process(input.subarray(at, at + n)));
    at += n;
  }
  parts.push(rs.flush());
  return concatF32(parts);
}

Deno.test("Resampler: 22.05 kHz mono WAV (s16 in) matches ffmpeg's soxr at ≥ 60 dB SNR, exact length, both channels", async () => {
  const path = songPath("05-square-lullaby.wav");
  const wav = readWav(await Deno.readFile(path), path);
  assertEquals([wav.sampleRate, wav.channels], [22_050, 1]);
  const ref = await ffmpegSoxr48(path); // mono, 48 kHz
  using rs = new Resampler({ inRate: 22_050, inChannels: 1 });
  const out = resampleAll(rs, wav.pcm);
  assertEquals(out.length / 2, ref.length, "same length as ffmpeg");
  assertEquals(out.length / 2, expectedOutputFrames(wav.frames, 22_050));
  const snr = snrDb(ref, 1, out);
  assertGreaterOrEqual(snr, 60, `SNR ${snr.toFixed(1)} dB`);
  for (let i = 0; i < out.length; i += 2) {
    if (out[i] !== out[i + 1]) throw new Error(`mono not duplicated at frame ${i / 2}`);
  }
});

Deno.test("Resampler: 44.1 kHz stereo FLAC (float in) matches ffmpeg's soxr at ≥ 60 dB SNR, exact length", async () => {
  const path = songPath("06-harbour-chorale.flac");
  const [input, ref] = await Promise.all([ffmpegDecodeF32(path), ffmpegSoxr48(path)]);
  using rs = new Resampler({ inRate: 44_100, inChannels: 2 });
  const out = resampleAll(rs, input);
  assertEquals(out.length, ref.length, "same length as ffmpeg");
  assertEquals(out.length / 2, expectedOutputFrames(input.length / 2, 44_100));
  const snr = snrDb(ref, 2, out);
  assertGreaterOrEqual(snr, 60, `SNR ${snr.toFixed(1)} dB`);
});

Deno.test("Resampler: 44.1 → 48 kHz keeps tones up to 20 kHz within 1 dB and rejects images", () => {
  for (const freq of [100, 1000, 5000, 10_000, 15_000, 18_000, 20_000]) {
    const rate = 44_100;
    const n = rate; // 1 s
    const x = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      x[2 * i] = x[2 * i + 1] = 0.5 * Math.sin(2 * Math.PI * freq * i / rate);
    }
    using rs = new Resampler({ inRate: rate, inChannels: 2 });
    const out = resampleAll(rs, x);
    const body = out.subarray(2000 * 2, out.length - 2000 * 2); // skip the edges
    const gainDb = 20 * Math.log10(toneAmplitude(body, 2, 0, 48_000, freq) / 0.5);
    assert(Math.abs(gainDb) <= 1, `${freq} Hz: ${gainDb.toFixed(3)} dB`);
    // The tone's image at 44100 − f (folded back at 48 kHz to f + 3900 Hz) must be gone: a
    // linear interpolator leaves it at -23 dB for 10 kHz, -10 dB for 20 kHz.
    const image = 48_000 - (44_100 - freq);
    if (image < 24_000) {
      const imageDb = 20 * Math.log10(toneAmplitude(body, 2, 1, 48_000, image) / 0.5);
      assert(imageDb < -60, `${freq} Hz: image at ${image} Hz is ${imageDb.toFixed(1)} dB`);
    }
  }
});

Deno.test("Resampler: 22.05 → 48 kHz keeps tones to 10 kHz within 1 dB, images below -60 dB", () => {
  for (const freq of [200, 2000, 6000, 10_000]) {
    const rate = 22_050;
    const x = new Int16Array(rate);
    for (let i = 0; i < x.length; i++) {
      x[i] = Math.round(16384 * Math.sin(2 * Math.PI * freq * i / rate));
    }
    using rs = new Resampler({ inRate: rate, inChannels: 1 });
    const out = resampleAll(rs, x);
    const body = out.subarray(2000 * 2, out.length - 2000 * 2);
    const gainDb = 20 * Math.log10(toneAmplitude(body, 2, 0, 48_000, freq) / 0.5);
    assert(Math.abs(gainDb) <= 1, `${freq} Hz: ${gainDb.toFixed(3)} dB`);
    const imageDb = 20 * Math.log10(toneAmplitude(body, 2, 0, 48_000, rate - freq) / 0.5);
    assert(imageDb < -60, `${freq} Hz: image at ${rate - freq} Hz is ${imageDb.toFixed(1)} dB`);
  }
});

Deno.test("Resampler: output length is round(in × 48000 / inRate) for any split, as ffmpeg", async () => {
  for (const frames of [0, 1, 7, 100, 1000, 1001, 1003, 44_099]) {
    for (const rate of [22_050, 44_100, 32_000, 8000]) {
      using rs = new Resampler({ inRate: rate, inChannels: 2 });
      const out = resampleAll(rs, new Float32Array(frames * 2).fill(0.25));
      assertEquals(out.length / 2, expectedOutputFrames(frames, rate), `${frames} @ ${rate}`);
      assertEquals(rs.framesOut, out.length / 2);
      assertEquals(rs.framesIn, frames);
    }
  }
  // The rule is ffmpeg's: check it against ffmpeg itself on lengths that do not divide evenly.
  for (const frames of [1001, 1003, 100, 7]) {
    const raw = new Uint8Array(new Float32Array(frames).fill(0.1).buffer);
    const ref = await ffmpegF32([
      ...["-f", "f32le", "-ar", "22050", "-ac", "1", "-i", "-"],
      ...["-af", "aresample=resampler=soxr", "-ar", "48000", "-f", "f32le", "-"],
    ], raw);
    assertEquals(expectedOutputFrames(frames, 22_050), ref.length, `${frames} frames`);
  }
});

Deno.test("Resampler: 48 kHz input passes through bit-exact (s16 → float, mono duplicated)", () => {
  const x = new Int16Array([0, 1, -1, 32767, -32768, 12345]);
  using rs = new Resampler({ inRate: 48_000, inChannels: 1 });
  const out = concatF32([rs.process(x), rs.flush()]);
  assertEquals(out.length, 12);
  assertEquals(Array.from(floatToS16(out)), [
    0,
    0,
    1,
    1,
    -1,
    -1,
    32767,
    32767,
    -32768,
    -32768,
    12345,
    12345,
  ]);
});

Deno.test("Resampler: a full-scale square wave overshoots as ffmpeg's soxr does; floatToS16 clips it", async () => {
  const x = new Int16Array(22_050);
  for (let i = 0; i < x.length; i++) x[i] = (Math.floor(i / 50) % 2) ? 32767 : -32768;
  using rs = new Resampler({ inRate: 22_050, inChannels: 1 });
  const out = resampleAll(rs, x);
  const ref = await ffmpegF32([
    ...["-f", "s16le", "-ar", "22050", "-ac", "1", "-i", "-"],
    ...["-af", "aresample=resampler=soxr", "-ar", "48000", "-f", "f32le", "-c:a", "pcm_f32le", "-"],
  ], new Uint8Array(x.buffer));
  // Band-limiting a square wave overshoots (Gibbs): the peak is above 1.0, equally in both.
  assert(peak(out) > 1 && Math.abs(peak(out) - peak(ref)) < 0.01, `${peak(out)} vs ${peak(ref)}`);
  const s16 = floatToS16(out);
  assertEquals(Math.max(...s16), 32767);
  assertEquals(Math.min(...s16), -32768);
});

Deno.test("Resampler rejects bad input with clear errors", () => {
  assertThrows(() => new Resampler({ inRate: 0, inChannels: 2 }), RangeError, "input rate");
  assertThrows(
    () => new Resampler({ inRate: 44_100, inChannels: 3 as 2 }),
    RangeError,
    "channels must be 1 or 2",
  );
  const rs = new Resampler({ inRate: 44_100, inChannels: 2 });
  assertThrows(() => rs.process(new Float32Array(3)), RangeError, "whole frames");
  rs.flush();
  assertThrows(() => rs.process(new Float32Array(2)), TypeError, "after flush");
  rs.close();
  rs.close(); // second close is a no-op
  assertThrows(() => rs.flush(), TypeError, "closed");
});

Deno.test("Resampler without libsoxr fails with one line naming the Debian package", async () => {
  const code = `
    import { Resampler } from ${JSON.stringify(new URL("./resample.ts", import.meta.url).href)};
    try { new Resampler({ inRate: 44100, inChannels: 2 }); } catch (e) {
      console.log(e.name + ": " + e.message + " | " + e.debianPackage);
    }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    env: { SOUNDSOCK_LIBSOXR: "/nonexistent/libsoxr.so.0", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assertEquals(text.split("\n").length, 1, text);
  assert(text.startsWith(`${CodecLibraryError.name}: Cannot load libsoxr: `), text);
  assert(text.includes("Install it with: apt-get install libsoxr0 | libsoxr0"), text);
});
