/**
 * Wire-format throughput: frame encode (`encodeFrame`), datagram decode (`decodeDatagram`),
 * stream decode (`FrameDecoder.push` of 1 MiB of back-to-back frames) for 1200-byte and 64 KiB
 * payloads, and CRC-32C.
 *
 *   deno bench -A bench/wire_bench.ts     the `deno bench` table (time per call)
 *   deno run -A bench/wire_bench.ts       a summary in MB/s and frames/s (best of 7 timed runs)
 *
 * Reference rows (not soundsock code): `memcpy` is `Uint8Array.prototype.set` of the same
 * bytes, the floor any encoder that copies the payload pays; `node:zlib crc32` is the runtime's
 * native CRC-32 (a different polynomial, same table-free work per byte), to show how far the
 * slice-by-8 CRC-32C in pure JS is from native code.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { crc32c } from "../lib/wire/crc32c.ts";
import {
  decodeDatagram,
  encodeFrame,
  FrameType,
  HEADER_SIZE,
  STREAM_MAX_PAYLOAD,
} from "../lib/wire/frame.ts";
import { FrameDecoder } from "../lib/wire/stream_decoder.ts";

const SIZES = [
  { name: "1200 B", bytes: 1200 },
  { name: "64 KiB", bytes: 64 * 1024 },
] as const;
const MIB = 1024 * 1024;

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

interface Fixture {
  name: string;
  payload: Uint8Array;
  datagram: Uint8Array;
  /** Whole frames back to back, about 1 MiB. */
  stream: Uint8Array;
  framesInStream: number;
}

function fixture(name: string, bytes: number): Fixture {
  const payload = randomBytes(bytes);
  const datagram = encodeFrame({
    type: FrameType.DATA,
    streamId: 0x1234abcd,
    sequence: 7,
    timestamp: 130_612,
    payload,
  });
  const frameSize = HEADER_SIZE + bytes;
  const framesInStream = Math.max(1, Math.floor(MIB / frameSize));
  const stream = new Uint8Array(framesInStream * frameSize);
  for (let i = 0; i < framesInStream; i++) {
    stream.set(
      encodeFrame({
        type: FrameType.DATA,
        streamId: 1,
        sequence: i,
        timestamp: i * 26_122,
        payload,
      }),
      i * frameSize,
    );
  }
  return { name, payload, datagram, stream, framesInStream };
}

const FIXTURES = SIZES.map((s) => fixture(s.name, s.bytes));
const MAX = { maxPayload: STREAM_MAX_PAYLOAD };
let sink = 0;

/** Push `stream` into a fresh decoder in `chunk`-byte reads (as readFrames does). */
function pushStream(stream: Uint8Array, chunk: number): number {
  const decoder = new FrameDecoder();
  let frames = 0;
  for (let at = 0; at < stream.length; at += chunk) {
    frames += decoder.push(stream.subarray(at, at + chunk)).length;
  }
  decoder.end();
  return frames;
}

interface Case {
  group: string;
  name: string;
  /** Bytes processed per call (for MB/s). */
  bytes: number;
  /** Frames per call (for frames/s), 0 if not frames. */
  frames: number;
  fn: () => void;
}

const CASES: Case[] = [];
for (const f of FIXTURES) {
  const len = f.payload.length;
  CASES.push(
    {
      group: `encode ${f.name}`,
      name: `encodeFrame ${f.name}`,
      bytes: HEADER_SIZE + len,
      frames: 1,
      fn: () => {
        sink ^= encodeFrame({
          type: FrameType.DATA,
          streamId: 1,
          sequence: 9,
          timestamp: 26_122,
          payload: f.payload,
        }).length;
      },
    },
    {
      group: `encode ${f.name}`,
      name: `memcpy ${f.name} (reference)`,
      bytes: HEADER_SIZE + len,
      frames: 1,
      fn: () => {
        const out = new Uint8Array(HEADER_SIZE + len);
        out.set(f.payload, HEADER_SIZE);
        sink ^= out.length;
      },
    },
    {
      group: `decode ${f.name}`,
      name: `decodeDatagram ${f.name}`,
      bytes: f.datagram.length,
      frames: 1,
      fn: () => {
        sink ^= decodeDatagram(f.datagram, MAX).sequence;
      },
    },
    {
      group: `stream ${f.name}`,
      name: `FrameDecoder.push 1 MiB of ${f.name} frames, one push`,
      bytes: f.stream.length,
      frames: f.framesInStream,
      fn: () => {
        sink ^= pushStream(f.stream, f.stream.length);
      },
    },
    {
      group: `stream ${f.name}`,
      name: `FrameDecoder.push 1 MiB of ${f.name} frames, 64 KiB reads`,
      bytes: f.stream.length,
      frames: f.framesInStream,
      fn: () => {
        sink ^= pushStream(f.stream, 64 * 1024);
      },
    },
    {
      group: `crc ${f.name}`,
      name: `crc32c ${f.name}`,
      bytes: len,
      frames: 0,
      fn: () => {
        sink ^= crc32c(f.payload);
      },
    },
    {
      group: `crc ${f.name}`,
      name: `node:zlib crc32 ${f.name} (native, reference)`,
      bytes: len,
      frames: 0,
      fn: () => {
        sink ^= crc32(f.payload);
      },
    },
  );
}
{
  const big = randomBytes(MIB);
  CASES.push(
    {
      group: "crc 1 MiB",
      name: "crc32c 1 MiB",
      bytes: MIB,
      frames: 0,
      fn: () => void (sink ^= crc32c(big)),
    },
    {
      group: "crc 1 MiB",
      name: "node:zlib crc32 1 MiB (native, reference)",
      bytes: MIB,
      frames: 0,
      fn: () => void (sink ^= crc32(big)),
    },
  );
}

// Sanity: the stream decoder yields every frame.
for (const f of FIXTURES) {
  if (pushStream(f.stream, 64 * 1024) !== f.framesInStream) throw new Error("decoder lost frames");
}

for (const c of CASES) {
  Deno.bench({
    name: c.name,
    group: c.group,
    baseline: !c.name.includes("reference") && !c.name.includes("64 KiB reads"),
    fn: c.fn,
  });
}

/** Companion summary: best of 7 runs of ~200 ms each. */
function summary(): void {
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  out(
    "Reproduce: deno run -A bench/wire_bench.ts   (deno bench -A bench/wire_bench.ts for ns/iter)",
  );
  out("");
  out("| operation | MB/s | frames/s | µs/call |");
  out("|---|---:|---:|---:|");
  for (const c of CASES) {
    // Warm up (JIT), and find an iteration count that takes ~200 ms.
    let iters = 1;
    for (;;) {
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) c.fn();
      if (performance.now() - t0 > 50) break;
      iters *= 2;
    }
    iters *= 4;
    let best = Infinity;
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now();
      for (let i = 0; i < iters; i++) c.fn();
      best = Math.min(best, (performance.now() - t0) / 1000 / iters);
    }
    const mbs = c.bytes / best / 1e6;
    const fps = c.frames
      ? (c.frames / best).toLocaleString("en-US", { maximumFractionDigits: 0 })
      : "—";
    out(`| ${c.name} | ${mbs.toFixed(0)} | ${fps} | ${(best * 1e6).toFixed(2)} |`);
  }
  if (sink === 0.5) out(""); // keep `sink` observable
}

if (import.meta.main) summary();
