/**
 * The radio is one continuous station stream (Opus 48 kHz stereo, or PCM): real servers on port
 * 0, the real clients (cmd/) writing WAV, compared with ffmpeg's decode of the sources
 * resampled to 48 kHz stereo. The session joins during the 22.05 kHz mono song and runs across
 * the change to the 44.1 kHz stereo FLAC.
 */
import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { EventLog } from "../lib/cli/event_log.ts";
import { SongCatalog } from "../lib/songs/catalog.ts";
import { UdpServer } from "../lib/udp/server.ts";
import { readWav } from "../lib/audio/wav.ts";
import { expectedOutputFrames } from "../lib/codec/mod.ts";
import { opusFrameCount } from "../lib/station/encoder.ts";
import type { RadioCodec } from "../lib/station/encoder.ts";
import { ROOT } from "./_task.ts";
import { startRtpServer } from "./_udp_helpers.ts";
import { startTestServer } from "./_tls_helpers.ts";

const SONGS = ["05-square-lullaby.wav", "06-harbour-chorale.flac"];
const opts = { sanitizeOps: false, sanitizeResources: false };

/** A folder with the mono 22.05 kHz WAV and the FLAC after it (the radio plays them in order). */
async function twoSongs(): Promise<{ dir: string; catalog: SongCatalog }> {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-radio-" });
  for (const s of SONGS) await Deno.copyFile(join(ROOT, "songs", s), join(dir, s));
  return { dir, catalog: await SongCatalog.open(dir) };
}

/** ffmpeg's decode of `path`, resampled to 48 kHz stereo s16le. */
async function ffmpegRef(path: string): Promise<Int16Array> {
  const out = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-i", path, "-ar", "48000", "-ac", "2", "-f", "s16le", "-"],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return new Int16Array(out.stdout.buffer, 0, out.stdout.length >> 1);
}

/**
 * The station's stream as ffmpeg would make it: each song's reference, cut or padded to the
 * length the station gives it (round(frames × 48000 / rate)), back to back.
 */
async function stationReference(catalog: SongCatalog) {
  const parts: Int16Array[] = [];
  const lengths: number[] = [];
  for (const s of SONGS) {
    const song = catalog.get(s);
    const frames = expectedOutputFrames(song.frames, song.sampleRate);
    const ref = await ffmpegRef(song.path);
    const exact = new Int16Array(frames * 2);
    exact.set(ref.subarray(0, exact.length));
    parts.push(exact);
    lengths.push(frames);
  }
  const all = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return { pcm: all, lengths };
}

/** Pearson correlation of out[a..a+n) with ref[b..b+n) over both channels (frames). */
function correlation(out: Int16Array, a: number, ref: Int16Array, b: number, n: number): number {
  let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  const m = n * 2;
  for (let i = 0; i < m; i++) {
    const x = out[a * 2 + i]!;
    const y = ref[b * 2 + i]!;
    sx += x;
    sy += y;
    sxx += x * x;
    syy += y * y;
    sxy += x * y;
  }
  const cov = sxy - sx * sy / m;
  return cov / Math.sqrt((sxx - sx * sx / m) * (syy - sy * sy / m));
}

/** Mono, averaged over blocks of 8 frames (6 kHz), for a coarse alignment search. */
function decimate(pcm: Int16Array): Float32Array {
  const n = Math.floor(pcm.length / 16);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < 16; k++) s += pcm[i * 16 + k]!;
    out[i] = s;
  }
  return out;
}

/**
 * The offset d (frames) with out[i] ≈ ref[d + i]: a coarse search at 6 kHz over the first 2 s,
 * then a fine search at 48 kHz around it.
 */
function align(out: Int16Array, ref: Int16Array): number {
  const o = decimate(out.subarray(9600, 9600 + 96_000 * 2));
  // The client joins within a few seconds of the server's start.
  const r = decimate(ref.subarray(0, 48_000 * 2 * 8));
  let best = -Infinity;
  let bestD = 0;
  for (let d = 0; d + o.length <= r.length; d++) {
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i]! * r[d + i]!;
    if (s > best) {
      best = s;
      bestD = d;
    }
  }
  const coarse = bestD * 8 - 4800;
  let fine = coarse;
  let bestC = -Infinity;
  for (let d = Math.max(0, coarse - 16); d <= coarse + 16; d++) {
    const c = correlation(out, 4800, ref, d + 4800, 48_000);
    if (c > bestC) {
      bestC = c;
      fine = d;
    }
  }
  return fine;
}

/** Checks a radio recording against the station reference; returns the measured numbers. */
function checkRecording(out: Int16Array, ref: { pcm: Int16Array; lengths: number[] }) {
  const frames = out.length / 2;
  const d = align(out, ref.pcm);
  const boundary = ref.lengths[0]! - d; // output frame where the FLAC starts
  assert(boundary > 48_000 && boundary < frames - 48_000, `boundary at ${boundary} of ${frames}`);
  // Whole segments, the first 20 ms after joining left out (the decoder's first frame).
  const skip = 960;
  const c1 = correlation(out, skip, ref.pcm, d + skip, boundary - skip);
  const c2 = correlation(out, boundary, ref.pcm, d + boundary, frames - boundary);
  // No gap and no overlap at the song change: 200 ms across it match the reference at the
  // same alignment, and the second song's own best alignment is the first's.
  const across = correlation(out, boundary - 4800, ref.pcm, d + boundary - 4800, 9600);
  let shift = 0;
  let bestC = -Infinity;
  for (let k = -480; k <= 480; k++) {
    const c = correlation(out, boundary + 24_000, ref.pcm, d + boundary + 24_000 + k, 48_000);
    if (c > bestC) {
      bestC = c;
      shift = k;
    }
  }
  return { d, boundary, frames, c1, c2, across, shift };
}

/** The measured numbers, on stderr (`deno test` shows them under the test's output). */
function note(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${text}\n`));
}

function peak(pcm: Int16Array): number {
  let m = 0;
  for (const v of pcm) m = Math.max(m, Math.abs(v));
  return m;
}

async function runCmd(cmd: string, args: string[], timeoutMs = 60_000) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/${cmd}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function readEvents(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

async function udpRadioSession(codec: RadioCodec, clientArgs: string[] = []) {
  const { dir, catalog } = await twoSongs();
  const stop = new AbortController();
  const server = UdpServer.start({
    catalog,
    hostname: "127.0.0.1",
    port: 0,
    radioCodec: codec,
    log: EventLog.none(),
    signal: stop.signal,
  });
  // Frames per DATA sequence, as the station sent them (the truth for loss accounting).
  const framesOf = new Map<number, number>();
  server.station.subscribe((e) => {
    if (e.type === "packet") framesOf.set(e.packet.sequence, opusFrameCount(e.packet.payload));
  });
  try {
    // Join during the WAV, not at its start: after 2 s of station audio (well past the burst).
    while (server.station.samplesSent < 96_000) await new Promise((r) => setTimeout(r, 50));
    const wav = join(dir, "out.wav");
    const log = join(dir, "client.log");
    const r = await runCmd("udp_client.ts", [
      `127.0.0.1:${server.address.port}`,
      "--radio",
      "--seconds",
      "14",
      "--output",
      wav,
      "--log",
      log,
      "--stats-json",
      ...clientArgs,
    ]);
    assertEquals(r.code, 0, r.stderr);
    const out = readWav(await Deno.readFile(wav));
    return {
      out,
      events: await readEvents(log),
      ref: await stationReference(catalog),
      framesOf,
      stats: JSON.parse(r.stdout),
    };
  } finally {
    stop.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "udp radio: joins during the 22.05 kHz mono song, 48 kHz stereo Opus throughout, " +
    "each song's segment correlates ≥ 0.99 with ffmpeg's, no gap at the song change",
  ...opts,
  fn: async () => {
    const { out, events, ref } = await udpRadioSession("opus");
    assertEquals([out.sampleRate, out.channels], [48_000, 2]);
    const infos = events.filter((e) => e.event === "stream_info");
    assertEquals(infos.map((e) => e.title), SONGS);
    for (const i of infos) {
      assertEquals([i.codec, i.sampleRate, i.channels, i.frameMs], ["opus", 48_000, 2, 20]);
    }
    const m = checkRecording(out.pcm, ref);
    note(`udp opus: ${JSON.stringify(m)}`);
    assert(m.c1 >= 0.99, `WAV segment correlation ${m.c1}`);
    assert(m.c2 >= 0.99, `FLAC segment correlation ${m.c2}`);
    assert(m.across >= 0.99, `correlation across the song change ${m.across}`);
    assertEquals(m.shift, 0);
  },
});

Deno.test({
  name: "udp radio --radio-codec pcm: s16le 48 kHz stereo, the same continuous stream",
  ...opts,
  fn: async () => {
    const { out, events, ref } = await udpRadioSession("pcm");
    assertEquals([out.sampleRate, out.channels], [48_000, 2]);
    const infos = events.filter((e) => e.event === "stream_info");
    assertEquals(infos.map((e) => [e.codec, e.sampleRate, e.channels]), [
      ["pcm_s16le", 48_000, 2],
      ["pcm_s16le", 48_000, 2],
    ]);
    const m = checkRecording(out.pcm, ref);
    note(`udp pcm: ${JSON.stringify(m)}`);
    assert(m.c1 >= 0.999 && m.c2 >= 0.999 && m.across >= 0.999, JSON.stringify(m));
    assertEquals(m.shift, 0);
  },
});

Deno.test({
  name: "udp radio under --sim-loss 5 --sim-seed 3: one Opus PLC frame per lost frame, the " +
    "output keeps the stream's length, nothing above the source's peak",
  ...opts,
  fn: async () => {
    const { out, events, ref, framesOf, stats } = await udpRadioSession("opus", [
      "--sim-loss",
      "5",
      "--sim-seed",
      "3",
    ]);
    assertEquals([out.sampleRate, out.channels], [48_000, 2]);
    // Lost frames: the station's frames of every sequence the client reported lost.
    let lostFrames = 0;
    let lostPackets = 0;
    for (const g of events.filter((e) => e.event === "gap")) {
      for (let s = g.from as number; s < (g.to as number); s++) {
        lostFrames += framesOf.get(s)!;
        lostPackets++;
      }
    }
    const playout = events.find((e) => e.event === "playout")!;
    assert(lostPackets > 5, `${lostPackets} packets lost`);
    assertEquals(playout.opusFramesConcealed, lostFrames);
    // Length: every frame from the first played to the last is in the WAV, decoded or concealed.
    assertEquals(
      out.frames,
      960 * ((playout.opusFramesDecoded as number) + (playout.opusFramesConcealed as number)),
    );
    // Time-aligned to the end: the last second sits where the first second's alignment says.
    const d = align(out.pcm, ref.pcm);
    // The last second's best alignment is the first second's: no frame missing or extra.
    const endAt = out.frames - 48_000;
    let endShift = 0;
    let endC = -Infinity;
    for (let k = -1920; k <= 1920; k++) {
      const c = correlation(out.pcm, endAt, ref.pcm, d + endAt + k, 24_000);
      if (c > endC) {
        endC = c;
        endShift = k;
      }
    }
    const srcPeak = peak(ref.pcm);
    const outPeak = peak(out.pcm);
    note(
      `udp opus loss: lost ${lostPackets} packets = ${lostFrames} frames, concealed ` +
        `${playout.opusFramesConcealed}, frames ${out.frames}, end shift ${endShift} ` +
        `(correlation ${endC}), ` +
        `peak ${outPeak} vs source ${srcPeak}, injected ${JSON.stringify(stats.injected)}`,
    );
    assertEquals(endShift, 0, `the output's end is ${endShift} samples off the stream`);
    assert(outPeak <= srcPeak * 1.1 + 655, `peak ${outPeak} vs source ${srcPeak}`);
  },
});

Deno.test({
  name: "tls radio: 48 kHz stereo Opus across the song change, each segment ≥ 0.99 vs ffmpeg",
  ...opts,
  fn: async () => {
    const { dir, catalog } = await twoSongs();
    try {
      await using t = await startTestServer(dir, { random: () => 0 });
      // Join during the WAV, after 2 s of station audio.
      while (t.server.station.samplesSent < 96_000) await new Promise((r) => setTimeout(r, 50));
      const wav = join(dir, "out.wav");
      const log = join(dir, "client.log");
      const r = await runCmd("tls_client.ts", [
        "radio",
        "--server",
        `localhost:${t.port}`,
        "--ca",
        t.certs.caCert,
        "--max-seconds",
        "14",
        "--output",
        wav,
        "--log",
        log,
      ]);
      assertEquals(r.code, 0, r.stderr);
      const out = readWav(await Deno.readFile(wav));
      assertEquals([out.sampleRate, out.channels], [48_000, 2]);
      const m = checkRecording(out.pcm, await stationReference(catalog));
      note(`tls opus: ${JSON.stringify(m)}`);
      assert(m.c1 >= 0.99, `WAV segment correlation ${m.c1}`);
      assert(m.c2 >= 0.99, `FLAC segment correlation ${m.c2}`);
      assert(m.across >= 0.99, `correlation across the song change ${m.across}`);
      assertEquals(m.shift, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "udp-server without libopus says so once and falls back to PCM (clients get pcm_s16le)",
  ...opts,
  fn: async () => {
    const r = await runCmd("udp_server.ts", ["--port", "0", "--help"]);
    assertEquals(r.code, 0);
    assert(r.stdout.includes("--radio-codec") || r.stderr.includes("--radio-codec"));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}cmd/udp_server.ts`, "--port", "0"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1", SOUNDSOCK_LIBOPUS: "/nonexistent/libopus.so.0" },
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const deadline = AbortSignal.timeout(15_000);
    while (!/listening on/.test(text) && !deadline.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    // And it does send PCM: a client (with libopus) is told pcm_s16le 48 kHz stereo.
    const port = /listening on [^ ]+:(\d+)/.exec(text)?.[1];
    const dir = await Deno.makeTempDir({ prefix: "soundsock-radio-" });
    try {
      const log = join(dir, "client.log");
      const r = await runCmd("udp_client.ts", [
        `127.0.0.1:${port}`,
        "--radio",
        "--seconds",
        "1",
        "--output",
        join(dir, "x.wav"),
        "--log",
        log,
      ]);
      assertEquals(r.code, 0, r.stderr);
      const info = (await readEvents(log)).find((e) => e.event === "stream_info")!;
      assertEquals([info.codec, info.sampleRate, info.channels], ["pcm_s16le", 48_000, 2]);
    } finally {
      child.kill("SIGTERM");
      await reader.cancel();
      await child.status;
      await Deno.remove(dir, { recursive: true });
    }
    const lines = text.split("\n").filter((l) => l.includes("libopus"));
    assertEquals(lines.length, 1, text);
    assert(lines[0]!.includes("apt-get install libopus0"), lines[0]);
    assert(lines[0]!.includes("PCM"), lines[0]);
  },
});

Deno.test({
  name: "udp-client receiving the Opus radio without libopus fails with one line naming libopus0",
  ...opts,
  fn: async () => {
    const { dir, catalog } = await twoSongs();
    const stop = new AbortController();
    const server = UdpServer.start({
      catalog,
      hostname: "127.0.0.1",
      port: 0,
      log: EventLog.none(),
      signal: stop.signal,
    });
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${ROOT}cmd/udp_client.ts`,
          `127.0.0.1:${server.address.port}`,
          "--radio",
          "--seconds",
          "5",
          "--output",
          join(dir, "x.wav"),
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1", SOUNDSOCK_LIBOPUS: "/nonexistent/libopus.so.0" },
        signal: AbortSignal.timeout(30_000),
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 1, stderr);
      const errors = stderr.split("\n").filter((l) => l.startsWith("error:"));
      assertEquals(errors.length, 1, stderr);
      assert(errors[0]!.includes("apt-get install libopus0"), errors[0]);
      assert(!stderr.includes("    at "), stderr); // no stack trace
    } finally {
      stop.abort();
      await server.finished;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "udp-server --rtp sends the station stream: ffmpeg decodes Opus RTP (RFC 7587) during " +
    "the WAV song, and it is that song",
  ...opts,
  fn: async () => {
    const { dir, catalog } = await twoSongs();
    try {
      {
        await using server = await startRtpServer(dir, dir);
        const sdp = server.sdp;
        const sdpText = await Deno.readTextFile(sdp);
        assert(sdpText.includes("a=rtpmap:96 opus/48000/2"), sdpText);
        const out = await new Deno.Command("ffmpeg", {
          args: [
            ...["-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i", sdp],
            ...["-t", "3", "-f", "s16le", "-ac", "2", "-ar", "48000", "-"],
          ],
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(20_000),
        }).output();
        const errors = new TextDecoder().decode(out.stderr);
        assert(out.success, errors);
        assertEquals(errors.trim(), "");
        const pcm = new Int16Array(out.stdout.buffer, 0, out.stdout.length >> 1);
        assertEquals(pcm.length, 3 * 48_000 * 2);
        // The first seconds of the station are the 22.05 kHz mono WAV (MPA RTP sent nothing
        // during WAV and FLAC songs): ffmpeg's RTP decode correlates with its source.
        const ref = await stationReference(catalog);
        const d = align(pcm, ref.pcm);
        const c = correlation(pcm, 4800, ref.pcm, d + 4800, 96_000);
        note(`rtp opus: offset ${d}, correlation ${c}`);
        assert(c >= 0.99, `correlation ${c}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
