/**
 * UDP server and client over loopback: real server on port 0, real client, real bytes.
 * The impairment relay here is separate code from the `--sim-*` feature, so each checks the
 * other: the relay decides by sequence number, and the client's counters must match it.
 */
import { assert, assertEquals, assertGreater, assertRejects } from "@std/assert";
import { EventLog } from "../lib/cli/event_log.ts";
import { decodeDatagram, encodeFrame, FrameType } from "../lib/wire/frame.ts";
import { encodeControl, readReject } from "../lib/wire/messages.ts";
import { Impairment } from "../lib/udp/impairment.ts";
import { listenRadio, listSongs, playSong, RequestRefusedError } from "../lib/udp/client.ts";
import {
  ffmpegDecode,
  handshake,
  maxDiff,
  MemoryOutput,
  rawSocket,
  receiveFrame,
  SONGS_DIR,
  songsCatalog,
  startServer,
} from "./_udp_helpers.ts";

const SHORT_MP3 = "04-nocturne.mp3";

/** Waits (bounded) for a server-side counter to reach a value. */
async function until(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
const FLAC = "06-harbour-chorale.flac";

function clientOptions(output?: MemoryOutput) {
  return {
    signal: new AbortController().signal,
    log: EventLog.none(),
    bufferMs: 150,
    timeoutMs: 3000,
    ...(output ? { openOutput: () => Promise.resolve(output) } : {}),
  };
}

Deno.test("udp: a whole MP3 on demand with no loss decodes to exactly the source's samples", async () => {
  await using server = await startServer({ intervalMs: 0 });
  const heard = new MemoryOutput();
  const report = await playSong(server.address, SHORT_MP3, clientOptions(heard));
  assertEquals(report.ending, "end");
  assertEquals(report.lost, 0);
  assertEquals(report.received, report.expected);
  const reference = await ffmpegDecode(`${SONGS_DIR}${SHORT_MP3}`);
  // Same length (priming and padding trimmed) and within 1 LSB (decoder rounding).
  assert(maxDiff(heard.samples(), reference) <= 1);
});

Deno.test("udp: a FLAC song is sent as PCM and arrives bit-identical", async () => {
  await using server = await startServer({ intervalMs: 0 });
  const heard = new MemoryOutput();
  const report = await playSong(server.address, "6", clientOptions(heard));
  assertEquals(report.lost, 0);
  assertEquals(maxDiff(heard.samples(), await ffmpegDecode(`${SONGS_DIR}${FLAC}`)), 0);
});

Deno.test("udp: real-time pacing takes the song's duration, not less", async () => {
  // The radio is paced by the same media clock as on-demand streams; 2 s of it is enough.
  await using server = await startServer();
  const start = performance.now();
  const report = await listenRadio(server.address, {
    ...clientOptions(new MemoryOutput()),
    maxSeconds: 2,
  });
  const elapsed = performance.now() - start;
  // 2 s of radio carries about 2 s of audio (plus the ≤ 400 ms join burst), not a flood.
  const audioMs = report.played * 26.1;
  assert(elapsed >= 1900, `elapsed ${elapsed}`);
  assert(audioMs < 2000 + 600, `played ${audioMs} ms of audio in ${elapsed} ms`);
});

Deno.test("udp: the song list arrives in datagram-sized pages and matches the catalog", async () => {
  await using server = await startServer({ maxPayload: 300 });
  const songs = await listSongs(server.address, clientOptions());
  const catalog = await songsCatalog();
  assertEquals(songs.map((s) => s.title), catalog.songs.map((s) => s.title));
  assertEquals(songs.map((s) => s.index), catalog.songs.map((_, i) => i + 1));
});

Deno.test("udp: an unknown song is refused with a clear message", async () => {
  await using server = await startServer();
  const err = await assertRejects(
    () => playSong(server.address, "no-such-song", clientOptions()),
    RequestRefusedError,
  );
  assertEquals(err.message, `Song "no-such-song" does not exist`);
  for (const name of ["../deno.json", "/etc/passwd", "..", ".hidden", "0", "99"]) {
    await assertRejects(() => playSong(server.address, name, clientOptions()), RequestRefusedError);
  }
});

/**
 * A UDP relay between client and server that impairs server→client DATA by sequence number:
 * drops `drop`, sends `dup` twice, swaps each `swap` packet with the one after it, and delays
 * `delay` packets by 30 ms. Everything else passes untouched, in order.
 */
function startRelay(
  server: { hostname: string; port: number },
  plan: { drop: Set<number>; dup: Set<number>; swap: Set<number>; delay: Set<number> },
) {
  const front = rawSocket(); // the client talks to this
  const back = rawSocket(); // the server sees this
  let client: Deno.NetAddr | undefined;
  const done = { dropped: 0, duplicated: 0, swapped: 0, delayed: 0 };
  let held: Uint8Array | undefined;
  const toClient = (b: Uint8Array) => front.send(b, client!).catch(() => 0);
  const upstream = (async () => {
    for await (const [data, addr] of front) {
      client = addr as Deno.NetAddr;
      await back.send(data, { transport: "udp", ...server });
    }
  })().catch(() => {});
  const downstream = (async () => {
    for await (const [data] of back) {
      const bytes = data.slice();
      let seq = -1;
      try {
        const f = decodeDatagram(bytes);
        if (f.type === FrameType.DATA) seq = f.sequence;
      } catch { /* pass through */ }
      if (seq < 0) {
        await toClient(bytes);
        continue;
      }
      if (plan.drop.has(seq)) {
        done.dropped++;
        continue;
      }
      if (plan.swap.has(seq)) {
        held = bytes;
        done.swapped++;
        continue;
      }
      if (plan.delay.has(seq)) {
        done.delayed++;
        setTimeout(() => void toClient(bytes), 30);
      } else {
        await toClient(bytes);
      }
      if (plan.dup.has(seq)) {
        done.duplicated++;
        await toClient(bytes);
      }
      if (held) {
        await toClient(held);
        held = undefined;
      }
    }
  })().catch(() => {});
  const addr = front.addr as Deno.NetAddr;
  return {
    address: { hostname: addr.hostname, port: addr.port },
    done,
    async [Symbol.asyncDispose]() {
      front.close();
      back.close();
      await Promise.all([upstream, downstream]);
    },
  };
}

Deno.test("udp: client counters equal exactly what an impairing relay did, and playback continues", async () => {
  await using server = await startServer({ intervalMs: 0 });
  const plan = {
    drop: new Set([5, 17, 18, 60]),
    dup: new Set([9, 40, 41]),
    swap: new Set([25, 70, 90]),
    delay: new Set([30, 31, 80]),
  };
  await using relay = startRelay(server.address, plan);
  const heard = new MemoryOutput();
  const report = await playSong(relay.address, SHORT_MP3, {
    ...clientOptions(heard),
    bufferMs: 300,
  });
  assertEquals(relay.done, { dropped: 4, duplicated: 3, swapped: 3, delayed: 3 });
  assertEquals(report.expected, 114);
  assertEquals(report.lost, 4);
  assertEquals(report.duplicated, 3);
  // Each swap makes one packet arrive after a higher one; a 30 ms delay at --interval 0 also
  // lets later packets overtake, so delays add reordering the relay cannot count exactly.
  assert(report.reordered >= 3, `reordered ${report.reordered}`);
  assertEquals(report.late, 0);
  assertEquals(report.played, 114 - 4);
  assertEquals(report.ending, "end");
  // Playback continued past every gap: nearly the whole song came out.
  const reference = await ffmpegDecode(`${SONGS_DIR}${SHORT_MP3}`);
  assertGreater(heard.samples().length, reference.length * 0.9);
});

Deno.test("udp: client counters equal what an impairing relay did, with swaps only (exact)", async () => {
  await using server = await startServer({ intervalMs: 0 });
  const plan = {
    drop: new Set([3, 50]),
    dup: new Set([7]),
    swap: new Set([20, 40, 60, 80]),
    delay: new Set<number>(),
  };
  await using relay = startRelay(server.address, plan);
  const report = await playSong(relay.address, SHORT_MP3, clientOptions(new MemoryOutput()));
  assertEquals(
    {
      lost: report.lost,
      duplicated: report.duplicated,
      reordered: report.reordered,
      late: report.late,
    },
    { lost: 2, duplicated: 1, reordered: 4, late: 0 },
  );
});

Deno.test("udp: --sim-* on the client is reproducible from its seed and reported as injected", async () => {
  await using server = await startServer({ intervalMs: 0 });
  const run = async () => {
    const impairment = new Impairment({
      lossPct: 10,
      reorderPct: 5,
      dupPct: 5,
      delayMs: 0,
      jitterMs: 0,
      seed: 42,
    });
    return await playSong(server.address, SHORT_MP3, {
      ...clientOptions(new MemoryOutput()),
      impairment,
    });
  };
  const a = await run();
  const b = await run();
  // The same seed makes the same decisions, so both runs observe the same thing.
  assertEquals(a.injected, b.injected);
  assertEquals([a.lost, a.duplicated, a.reordered], [b.lost, b.duplicated, b.reordered]);
  // --sim-* acts on every datagram (control frames too, as a real network would), so the
  // observed DATA counters are at most what was injected; nearly all datagrams are DATA.
  const injected = a.injected!;
  assert(a.lost <= injected.dropped && a.lost >= injected.dropped - 3, JSON.stringify(a));
  assert(a.duplicated <= injected.duplicated && a.duplicated >= injected.duplicated - 3);
  assert(a.reordered <= injected.reordered && a.reordered >= injected.reordered - 3);
  assertGreater(a.lost, 0);
});

Deno.test("udp: admission — client N+1 gets REJECT server_full", async () => {
  await using server = await startServer({ maxClients: 2 });
  const socks = [rawSocket(), rawSocket(), rawSocket()];
  try {
    for (const s of socks.slice(0, 2)) {
      const { answer } = await handshake(s, server.address, { op: "radio" });
      assertEquals(answer.type, FrameType.ACCEPT);
    }
    const { answer: reject } = await handshake(socks[2]!, server.address, { op: "radio" });
    assertEquals(reject.type, FrameType.REJECT);
    assertEquals(readReject(reject).code, "server_full");
    assertEquals(server.clientCount, 2);
    assertEquals(server.stats.rejected, 1);
  } finally {
    for (const s of socks) s.close();
  }
});

Deno.test("udp: a radio listener that stops sending heartbeats is dropped after the timeout", async () => {
  await using server = await startServer({ heartbeatTimeoutMs: 600 });
  using sock = rawSocket();
  const { answer } = await handshake(sock, server.address, { op: "radio" });
  assertEquals(answer.type, FrameType.ACCEPT);
  assertEquals(server.clientCount, 1);
  const deadline = performance.now() + 3000;
  while (server.clientCount > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assertEquals(server.clientCount, 0);
  assertEquals(server.stats.timedOut, 1);
});

Deno.test("udp: radio listeners receive byte-identical DATA frames", async () => {
  await using server = await startServer();
  const socks = [rawSocket(), rawSocket()];
  try {
    const seen: Map<number, string>[] = [new Map(), new Map()];
    await Promise.all(socks.map(async (s, i) => {
      await handshake(s, server.address, { op: "radio" });
      const buf = new Uint8Array(65536);
      const until = performance.now() + 2500;
      while (performance.now() < until) {
        const [data] = await s.receive(buf);
        const f = decodeDatagram(data);
        if (f.type === FrameType.DATA) seen[i]!.set(f.sequence, Array.from(data).join(","));
      }
    }));
    let common = 0;
    for (const [seq, bytes] of seen[0]!) {
      if (seen[1]!.has(seq)) {
        common++;
        assertEquals(seen[1]!.get(seq), bytes);
      }
    }
    assertGreater(common, 15);
  } finally {
    for (const s of socks) s.close();
  }
});

Deno.test("hostile: garbage, bad CRCs, lying lengths, unknown types and spoofed heartbeats are counted and ignored while a stream completes", async () => {
  await using server = await startServer({ intervalMs: 0 });
  using attacker = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  const stream = playSong(server.address, SHORT_MP3, clientOptions(new MemoryOutput()));
  const good = encodeControl(FrameType.REQUEST, { op: "list" });
  const badCrc = good.slice();
  badCrc[badCrc.length - 1]! ^= 0xff;
  const liar = good.slice();
  new DataView(liar.buffer).setUint32(24, 70_000_000);
  const unknownType = good.slice();
  unknownType[3] = 0x7e;
  const hostile = [
    crypto.getRandomValues(new Uint8Array(100)),
    new Uint8Array(0),
    badCrc,
    liar,
    unknownType,
    good.subarray(0, 20),
    encodeFrame({ type: FrameType.HEARTBEAT, streamId: 12345 }), // no such stream
    encodeFrame({ type: FrameType.DATA, payload: new Uint8Array(10) }), // clients do not send DATA
  ];
  // In rounds, each waiting until the server has read the last one: a faster flood would
  // overflow the kernel's socket buffer, and datagrams the kernel drops cannot be counted.
  for (let round = 1; round <= 50; round++) {
    for (const h of hostile) await attacker.send(h, to);
    await until(() => server.stats.malformed >= round * hostile.length);
  }
  const report = await stream;
  assertEquals(report.lost, 0);
  assertEquals(report.ending, "end");
  assertEquals(server.stats.malformed, 50 * hostile.length);
});

Deno.test("hostile: a flood of list requests from one address is rate-limited (no amplification)", async () => {
  await using server = await startServer();
  using flooder = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  const request = encodeControl(FrameType.REQUEST, { op: "list" });
  const started = performance.now();
  for (let batch = 1; batch <= 10; batch++) {
    for (let i = 0; i < 50; i++) await flooder.send(request, to);
    await until(() => server.stats.datagrams >= batch * 50);
  }
  const seconds = Math.ceil((performance.now() - started) / 1000);
  let answers = 0;
  try {
    for (;;) {
      // Without the cookie every answer is a CHALLENGE (§5.0); the budget bounds those too.
      await receiveFrame(flooder, (f) => f.type === FrameType.CHALLENGE, 500);
      answers++;
    }
  } catch {
    // no more answers
  }
  // At most 20 answers per second per address; every other request was counted and dropped.
  assert(answers <= 20 * (seconds + 1), `${answers} answers to 500 requests in ${seconds} s`);
  assertEquals(answers + server.stats.rateLimited, 500);
  // And the server still serves a well-behaved client.
  assertEquals(
    (await listSongs(server.address, clientOptions())).length,
    (await songsCatalog()).songs.length,
  );
});
