/**
 * Audio engine benchmark: decode speed (× real time) of lib/audio vs `ffmpeg -f s16le` on the
 * same files in the same run, Player open → first sample consumed (null and pulse), and CPU of
 * playing one stream.
 *
 * Usage: deno run -A bench/audio_decode.ts [FILES...]   (default: songs/*)
 * PulseAudio rows need `pulseaudio` installed (a private daemon is started, as in the tests).
 *
 * @module
 */

import process from "node:process";
import { decodeFile, loadAudioLib, Player, probeSong } from "../lib/audio/mod.ts";
import { havePulse, startPulse } from "../tests/_pulse.ts";

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

async function ffmpegSeconds(path: string): Promise<number> {
  const t0 = performance.now();
  const r = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-threads", "1", "-i", path, "-f", "s16le", "-"],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!r.success) throw new Error(`ffmpeg failed on ${path}`);
  return (performance.now() - t0) / 1000;
}

async function decodeBench(files: string[]) {
  await loadAudioLib(); // do not count loading / building the library
  // ffmpeg's process start (~0.1 s) would dominate short songs: measure it on a tiny file and
  // subtract it, so the ffmpeg column is its decode speed.
  const tiny = await Deno.makeTempFile({ suffix: ".wav" });
  await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=d=0.01", tiny],
  }).output();
  let startup = Infinity;
  for (let i = 0; i < 5; i++) startup = Math.min(startup, await ffmpegSeconds(tiny));
  await Deno.remove(tiny);
  out(`ffmpeg process start-up (subtracted): ${(startup * 1000).toFixed(1)} ms\n`);
  out("| file | codec | duration s | ours ms | ours ×RT | ffmpeg ms | ffmpeg ×RT | ours/ffmpeg |");
  out("|---|---|---|---|---|---|---|---|");
  for (const f of files) {
    const info = await probeSong(f);
    const dur = info.durationMs / 1000;
    let best = Infinity, bestFf = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await decodeFile(f);
      best = Math.min(best, (performance.now() - t0) / 1000);
      bestFf = Math.min(bestFf, Math.max(1e-4, (await ffmpegSeconds(f)) - startup));
    }
    out(
      `| ${f.split("/").pop()} | ${info.codec} | ${dur.toFixed(1)} | ${
        (best * 1000).toFixed(1)
      } | ` +
        `${(dur / best).toFixed(0)} | ${(bestFf * 1000).toFixed(1)} | ${
          (dur / bestFf).toFixed(0)
        } | ` +
        `${(bestFf / best).toFixed(2)} |`,
    );
  }
}

async function playerBench(backend: "null" | "pulse") {
  const lib = await loadAudioLib();
  const latencies: number[] = [];
  for (let i = 0; i < 5; i++) {
    await using p = await Player.open({ backend, sampleRate: 48000, channels: 2 });
    await p.write(new Int16Array(48000 * 2 / 5)); // 200 ms
    const deadline = performance.now() + 5000;
    while (p.stats().firstFrameAtNs === 0n && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1));
    }
    const first = p.stats().firstFrameAtNs;
    latencies.push(first === 0n ? NaN : Number(first - p.openedAtNs) / 1e6);
  }
  // CPU while playing 3 s of one stream (what this process uses, audio thread included).
  await using p = await Player.open({ backend, sampleRate: 44100, channels: 2 });
  const tone = new Int16Array(44100 * 2 * 3);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await p.write(tone);
  await p.drain();
  const wall = (performance.now() - t0) * 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / wall * 100;
  latencies.sort((a, b) => a - b);
  out(
    `| ${backend} | ${latencies.map((l) => l.toFixed(0)).join(", ")} | ` +
      `${latencies[2]!.toFixed(0)} | ${cpu.toFixed(1)} % | ${p.underruns} |`,
  );
  void lib;
}

if (import.meta.main) {
  let files = Deno.args;
  if (files.length === 0) {
    const dir = new URL("../songs/", import.meta.url).pathname;
    files = [...Deno.readDirSync(dir)].filter((e) => /\.(mp3|wav|flac)$/.test(e.name))
      .map((e) => `${dir}${e.name}`).sort();
  }
  out("## Decode speed to s16 PCM (one thread, best of 3)\n");
  await decodeBench(files);
  out("\n## Player: open → first sample consumed (5 runs, ms), CPU of one stream\n");
  out(
    "| backend | open→first sample ms | median ms | CPU (one 44.1 kHz stereo stream) | underruns |",
  );
  out("|---|---|---|---|---|");
  await playerBench("null");
  if (havePulse()) {
    await using _pulse = await startPulse();
    await playerBench("pulse");
  } else out("| pulse | (pulseaudio not installed) | | | |");
}

// Under `deno bench` (deno task bench): the decode of each song as a Deno.bench case.
if (!import.meta.main) {
  const dir = new URL("../songs/", import.meta.url).pathname;
  let songs: string[] = [];
  try {
    songs = [...Deno.readDirSync(dir)].filter((e) => /\.(mp3|wav|flac)$/.test(e.name))
      .map((e) => `${dir}${e.name}`).sort();
  } catch {
    // no songs/: nothing to bench
  }
  for (const s of songs) {
    Deno.bench(`decodeFile ${s.split("/").pop()}`, { group: "decode" }, async () => {
      await decodeFile(s);
    });
  }
}
