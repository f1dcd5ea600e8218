/**
 * Codec benchmark: CPU of one Opus station (48 kHz stereo, 128 kbit/s, 20 ms frames) and of the
 * resampler, side by side with ffmpeg on the same samples in the same run, as ratios.
 *
 * - Opus: lib/codec OpusEncoder vs `ffmpeg -c:a libopus -b:a 128k -frame_duration 20`
 *   (the same libopus, complexity 10, VBR), over all songs resampled to 48 kHz stereo.
 * - Resampler: lib/codec Resampler (libsoxr HQ, 100 ms blocks) vs `ffmpeg -af
 *   aresample=resampler=soxr -ar 48000` on the 44.1 kHz stereo FLAC and the 22.05 kHz mono WAV
 *   (→ stereo), raw f32 in and out.
 *
 * CPU is user + system time: ours from `process.cpuUsage()` around the work (input prepared
 * beforehand), ffmpeg's from bash's `times` for the child, minus ffmpeg's start-up measured on
 * a 10 ms input (best of 5). Both run single-threaded (`-threads 1`). The resampler rows use 5×
 * the passes, best of 3 runs; ffmpeg's figure there is the CPU difference between a 5×- and a
 * 1×-passes run, scaled to the 5× audio (its start-up would otherwise swamp it).
 *
 * Usage: deno run -A bench/codec.ts [--repeat N]   (N passes over the input, default 3)
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "@std/cli/parse-args";
import { OpusDecoder, OpusEncoder, Resampler } from "../lib/codec/mod.ts";
import { loadAudioLib } from "../lib/audio/mod.ts";

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const root = (p: string) => decodeURIComponent(new URL(`../${p}`, import.meta.url).pathname);

const SONGS = [
  "01-morning-arpeggio.mp3",
  "02-lantern-waltz.mp3",
  "03-tin-drum-groove.mp3",
  "04-nocturne.mp3",
  "05-square-lullaby.wav",
  "06-harbour-chorale.flac",
];

/** ffmpeg decode of a file to raw f32 (its own rate and channels), or with extra args. */
async function ffmpegRaw(path: string, extra: string[] = []): Promise<Float32Array> {
  const r = await new Deno.Command("ffmpeg", {
    args: [
      "-v",
      "error",
      "-nostdin",
      "-i",
      path,
      ...extra,
      "-f",
      "f32le",
      "-c:a",
      "pcm_f32le",
      "-",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`ffmpeg failed on ${path}: ${new TextDecoder().decode(r.stderr)}`);
  }
  return new Float32Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength / 4);
}

/** CPU seconds (user + sys) of one ffmpeg run, read with bash's `times` builtin. */
async function ffmpegCpu(args: string[]): Promise<number> {
  const quoted = args.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const r = await new Deno.Command("bash", {
    args: ["-c", `ffmpeg -v error -nostdin -threads 1 ${quoted} || exit 1; times`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`ffmpeg ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
  }
  // `times`: line 1 the shell, line 2 its children: "0m1.234s 0m0.056s".
  const line = new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!;
  const secs = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return secs.reduce((a, b) => a + b, 0);
}

function cpuOf(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

async function writeRaw(x: Float32Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".f32" });
  await Deno.writeFile(path, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  return path;
}

const row = (cells: (string | number)[]) => out(`| ${cells.join(" | ")} |`);
const fmt = (x: number, d = 1) => x.toFixed(d);

if (import.meta.main) {
  const args = parseArgs(Deno.args, { string: ["repeat"], default: { repeat: "3" } });
  const repeat = Math.max(1, Number(args.repeat) || 3);
  await loadAudioLib(); // the shim (opus ctl) is loaded before timing
  const tmp: string[] = [];
  try {
    // ffmpeg start-up, subtracted from every ffmpeg figure.
    const tiny = await writeRaw(new Float32Array(480 * 2));
    tmp.push(tiny);
    let startup = Infinity;
    for (let i = 0; i < 5; i++) {
      startup = Math.min(
        startup,
        await ffmpegCpu(["-f", "f32le", "-ar", "48000", "-ac", "2", "-i", tiny, "-f", "null", "-"]),
      );
    }
    out(`ffmpeg start-up CPU (subtracted): ${fmt(startup * 1000)} ms; passes: ${repeat}\n`);

    // ---- Opus: one station's stream (all songs at 48 kHz stereo, via our resampler).
    const station: Float32Array[] = [];
    for (const s of SONGS) {
      const path = root(`songs/${s}`);
      const probe = await new Deno.Command("ffprobe", {
        args: [
          "-v",
          "error",
          "-show_entries",
          "stream=sample_rate,channels",
          "-of",
          "csv=p=0",
          path,
        ],
        stdout: "piped",
      }).output();
      const [rate, ch] = new TextDecoder().decode(probe.stdout).trim().split(",").map(Number);
      using rs = new Resampler({ inRate: rate!, inChannels: ch as 1 | 2 });
      const x = await ffmpegRaw(path);
      station.push(rs.process(x), rs.flush());
    }
    const one = new Float32Array(station.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of station) {
      one.set(p, at);
      at += p.length;
    }
    const pcm = new Float32Array(one.length * repeat);
    for (let i = 0; i < repeat; i++) pcm.set(one, i * one.length);
    const seconds = pcm.length / 2 / 48_000;
    const pcmFile = await writeRaw(pcm);
    tmp.push(pcmFile);

    using enc = await OpusEncoder.create({ channels: 2, bitrate: 128_000, frameMs: 20 });
    const packets: Uint8Array[] = [];
    const step = enc.frameSize * 2;
    const encCpu = cpuOf(() => {
      for (let i = 0; i + step <= pcm.length; i += step) {
        packets.push(enc.encode(pcm.subarray(i, i + step)));
      }
    });
    const kbps = packets.reduce((n, p) => n + p.length, 0) * 8 / seconds / 1000;
    using dec = await OpusDecoder.create({ channels: 2 });
    const decCpu = cpuOf(() => {
      for (const p of packets) dec.decode(p);
    });
    const ffEnc = await ffmpegCpu([
      ...["-f", "f32le", "-ar", "48000", "-ac", "2", "-i", pcmFile],
      ...["-c:a", "libopus", "-b:a", "128k", "-frame_duration", "20", "-application", "audio"],
      ...["-f", "null", "-"],
    ]) - startup;

    out(
      `## Opus, one station: 48 kHz stereo, 128 kbit/s, 20 ms frames (${
        fmt(seconds)
      } s of audio)\n`,
    );
    row(["what", "CPU s", "% of a core", "× real time", "vs ffmpeg libopus"]);
    row(["---", "---", "---", "---", "---"]);
    row([
      `lib/codec OpusEncoder (${fmt(kbps)} kbit/s)`,
      fmt(encCpu, 2),
      fmt(encCpu / seconds * 100, 2),
      fmt(seconds / encCpu, 0),
      `${fmt(encCpu / ffEnc, 2)}× the CPU`,
    ]);
    row([
      "ffmpeg -c:a libopus -b:a 128k",
      fmt(ffEnc, 2),
      fmt(ffEnc / seconds * 100, 2),
      fmt(seconds / ffEnc, 0),
      "1.00×",
    ]);
    row([
      "lib/codec OpusDecoder",
      fmt(decCpu, 2),
      fmt(decCpu / seconds * 100, 2),
      fmt(seconds / decCpu, 0),
      "",
    ]);
    out("");

    // ---- Resampler.
    out(`## Resampler to 48 kHz stereo (libsoxr HQ) vs ffmpeg aresample=resampler=soxr\n`);
    row([
      "input",
      "audio s",
      "ours CPU s",
      "ours × real time",
      "ffmpeg CPU s",
      "ffmpeg × real time",
      "ours / ffmpeg CPU",
    ]);
    row(["---", "---", "---", "---", "---", "---", "---"]);
    for (
      const [song, rate, ch] of [["06-harbour-chorale.flac", 44_100, 2], [
        "05-square-lullaby.wav",
        22_050,
        1,
      ]] as const
    ) {
      // ffmpeg's resampling CPU is small next to its start-up, so take it as the difference
      // between a 5×-passes run and a 1×-passes run (best of 3 each).
      const x1 = await ffmpegRaw(root(`songs/${song}`));
      const x = new Float32Array(x1.length * repeat * 5);
      for (let i = 0; i < repeat * 5; i++) x.set(x1, i * x1.length);
      const small = x.subarray(0, x1.length * repeat);
      const secs = x.length / ch / rate;
      const smallSecs = small.length / ch / rate;
      const [bigFile, smallFile] = [await writeRaw(x), await writeRaw(small)];
      tmp.push(bigFile, smallFile);
      const block = rate / 10 * ch; // 100 ms
      const ffArgs = (file: string) => [
        ...["-f", "f32le", "-ar", String(rate), "-ac", String(ch), "-i", file],
        ...["-af", "aresample=resampler=soxr", "-ar", "48000", "-ac", "2"],
        ...["-c:a", "pcm_f32le", "-f", "null", "-"],
      ];
      let frames = 0;
      let cpu = Infinity, ffBig = Infinity, ffSmall = Infinity;
      for (let run = 0; run < 3; run++) {
        frames = 0;
        cpu = Math.min(
          cpu,
          cpuOf(() => {
            using rs = new Resampler({ inRate: rate, inChannels: ch });
            for (let i = 0; i < x.length; i += block) {
              frames += rs.process(x.subarray(i, i + block)).length / 2;
            }
            frames += rs.flush().length / 2;
          }),
        );
        ffBig = Math.min(ffBig, await ffmpegCpu(ffArgs(bigFile)));
        ffSmall = Math.min(ffSmall, await ffmpegCpu(ffArgs(smallFile)));
      }
      const ff = (ffBig - ffSmall) / (secs - smallSecs) * secs; // CPU for `secs` of audio
      row([
        `${song} (${rate / 1000} kHz, ${ch} ch) → ${frames} frames`,
        fmt(secs),
        fmt(cpu, 3),
        fmt(secs / cpu, 0),
        fmt(ff, 3),
        fmt(secs / ff, 0),
        `${fmt(cpu / ff, 2)}×`,
      ]);
    }
  } finally {
    for (const f of tmp) await Deno.remove(f).catch(() => {});
  }
}
