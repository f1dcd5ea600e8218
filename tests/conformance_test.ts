/**
 * Conformance: the MUSTs of docs/PROTOCOL.md that no other test proved, one test each (§8 of
 * the document maps every rule to its test). Real servers on port 0 and real sockets; raw
 * frames where the rule is about bytes on the wire. Grouped as §8 is: frames, control payloads,
 * DATA, UDP server, UDP client, TLS server.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertGreaterOrEqual,
  assertLess,
  assertMatch,
  assertNotEquals,
  assertThrows,
} from "@std/assert";
import { EventLog } from "../lib/cli/event_log.ts";
import { AddressCheck, COOKIE_PERIOD_MS, newToken } from "../lib/udp/address_check.ts";
import { playSong } from "../lib/udp/client.ts";
import type { UdpServer } from "../lib/udp/server.ts";
import {
  decodeDatagram,
  encodeFrame,
  type Frame,
  FrameFlag,
  FrameType,
  frameTypeName,
} from "../lib/wire/frame.ts";
import {
  encodeControl,
  encodeJson,
  MessageError,
  readAccept,
  readChallenge,
  readEnd,
  readError,
  readNowPlaying,
  readSessionControl,
  readSongList,
  readStreamInfo,
  readUdpRequest,
} from "../lib/wire/messages.ts";
import { readFrames } from "../lib/wire/stream_decoder.ts";
import {
  handshake,
  maxDiff,
  MemoryOutput,
  rawSocket,
  receiveFrame,
  songsCatalog,
  startLyingRelay,
  startServer,
} from "./_udp_helpers.ts";
import { makeSongs, readUntilClosed, startTestServer } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SHORT_MP3 = "04-nocturne.mp3";
const LONG_MP3 = "01-morning-arpeggio.mp3";
const HEX32 = /^[0-9a-f]{32}$/;
/** Every flag bit §1.1 does not define. */
const UNKNOWN_FLAGS = 0xffff & ~FrameFlag.SONG_START;

/** A frame and when it arrived (performance.now()). */
interface Arrival {
  frame: Frame;
  raw: Uint8Array;
  at: number;
}

/** Receives on `sock` for `ms`, or until `stop` accepts an arrival; every frame, in order. */
async function receiveFor(
  sock: Deno.DatagramConn,
  ms: number,
  stop: (a: Arrival, all: Arrival[]) => boolean = () => false,
): Promise<Arrival[]> {
  const got: Arrival[] = [];
  const deadline = AbortSignal.timeout(ms);
  const timedOut = new Promise<null>((resolve) =>
    deadline.addEventListener("abort", () => resolve(null))
  );
  const buf = new Uint8Array(65536);
  while (!deadline.aborted) {
    const r = await Promise.race([sock.receive(buf), timedOut]);
    if (!r) break;
    const raw = r[0].slice();
    const a = { frame: decodeDatagram(raw, { maxPayload: 65000 }), raw, at: performance.now() };
    got.push(a);
    if (stop(a, got)) break;
  }
  return got;
}

/**
 * One on-demand UDP stream by hand: the handshake, then every frame until the second END,
 * acknowledging every 16 DATA frames as udp-client does (so flow control never stalls).
 */
async function rawSongStream(server: UdpServer, song: string) {
  using sock = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  const first = await handshake(sock, server.address, { op: "song", song });
  assertEquals(first.answer.type, FrameType.ACCEPT);
  const { token, streamId } = first;
  let data = 0;
  let ends = 0;
  const rest = await receiveFor(sock, 10_000, (a) => {
    if (a.frame.type === FrameType.DATA && ++data % 16 === 0) {
      const ack = encodeControl(FrameType.HEARTBEAT, { token, ack: a.frame.sequence + 1 }, {
        streamId,
      });
      void sock.send(ack, to);
    }
    return a.frame.type === FrameType.END && ++ends === 2;
  });
  // Anything after the second END (there should be nothing) arrives within this grace.
  const after = await receiveFor(sock, 200);
  return { first, frames: [...rest, ...after] };
}

/** Waits (bounded) for a condition on server state. */
async function until(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function udpClientOptions(signal = new AbortController().signal, output?: MemoryOutput) {
  return {
    signal,
    log: EventLog.none(),
    bufferMs: 150,
    timeoutMs: 3000,
    ...(output ? { openOutput: () => Promise.resolve(output) } : {}),
  };
}

/** A raw TLS connection speaking frames: the client side of §5.3 by hand. */
async function tlsRaw(port: number, caCert: string) {
  const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [caCert] });
  const frames = readFrames(conn);
  return {
    conn,
    async write(bytes: Uint8Array) {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    },
    request(body: Record<string, unknown>) {
      return this.write(encodeControl(FrameType.REQUEST, body));
    },
    /** The next frame, or an error after `ms`. */
    async next(ms = 5000): Promise<Frame> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no frame within ${ms} ms`)), ms);
      });
      try {
        const r = await Promise.race([frames.next(), timeout]);
        if (r.done) throw new Error("the server closed the connection");
        return r.value;
      } finally {
        clearTimeout(timer);
      }
    },
    /** Frames until one of type `type` with stream id `streamId` (the others are returned too). */
    async until(type: FrameType, streamId = 0, ms = 5000): Promise<Frame[]> {
      const seen: Frame[] = [];
      for (;;) {
        const f = await this.next(ms);
        seen.push(f);
        if (f.type === type && f.streamId === streamId) return seen;
      }
    },
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}

// ---- Frames (§1, §2) ---------------------------------------------------------------------

Deno.test(
  "conformance: servers send no unknown flag bits; servers and udp-client ignore them",
  opts,
  async () => {
    // Senders: everything udp-server sends for a song has no bit but SONG_START, on DATA 0 only.
    await using udp = await startServer({ intervalMs: 0 });
    const { first, frames } = await rawSongStream(udp, SHORT_MP3);
    for (const { frame } of [{ frame: first.answer }, ...frames]) {
      const songStart = frame.type === FrameType.DATA && frame.sequence === 0;
      assertEquals(frame.flags, songStart ? FrameFlag.SONG_START : 0, frameTypeName(frame.type));
    }
    // Receivers: udp-server answers REQUESTs with every unknown bit set as if they were clear.
    {
      using sock = rawSocket();
      const to = { transport: "udp" as const, ...udp.address };
      const flagged = (body: object) =>
        encodeFrame({ type: FrameType.REQUEST, flags: UNKNOWN_FLAGS, payload: encodeJson(body) });
      await sock.send(flagged({ op: "list" }), to);
      const { cookie } = readChallenge(
        await receiveFrame(sock, (f) => f.type === FrameType.CHALLENGE),
      );
      await sock.send(flagged({ op: "list", cookie }), to);
      const list = readSongList(await receiveFrame(sock, (f) => f.type === FrameType.SONG_LIST));
      assertEquals(list.total, (await songsCatalog()).songs.length);
    }
    // udp-client: a relay sets every unknown bit on every frame; the song decodes the same.
    const direct = new MemoryOutput();
    const plain = await playSong(udp.address, SHORT_MP3, udpClientOptions(undefined, direct));
    await using relay = startLyingRelay(udp.address, (f) => [
      encodeFrame({ ...f, flags: f.flags | UNKNOWN_FLAGS }, { maxPayload: 65000 }),
    ]);
    const heard = new MemoryOutput();
    const report = await playSong(relay.address, SHORT_MP3, udpClientOptions(undefined, heard));
    assertEquals(report.ending, "end");
    assertEquals(report.lost, 0);
    assertEquals(report.received, plain.received);
    assertEquals(maxDiff(heard.samples(), direct.samples()), 0);
    // tls-server: a REQUEST with every unknown bit set is answered; its frames carry none.
    const dir = await makeSongs({ "a.wav": [0.5] });
    await using tls = await startTestServer(dir);
    using c = await tlsRaw(tls.port, tls.caCert);
    await c.write(
      encodeFrame({
        type: FrameType.REQUEST,
        flags: UNKNOWN_FLAGS,
        payload: encodeJson({ op: "get", song: "a.wav" }),
      }),
    );
    const got = await c.until(FrameType.END);
    assertEquals(got.map((f) => f.flags).filter((x) => x !== 0), []);
    assertEquals(got.filter((f) => f.type === FrameType.DATA).length, readEnd(got.at(-1)!).packets);
  },
);

Deno.test(
  "conformance: control frames carry sequence 0 and timestamp 0 (UDP and TLS; STREAM_INFO of the radio excepted)",
  opts,
  async () => {
    const zero = (f: Frame, where: string) => {
      assertEquals([f.sequence, f.timestamp], [0, 0], `${where} ${frameTypeName(f.type)}`);
    };
    // UDP on demand: CHALLENGE, ACCEPT, STREAM_INFO, END; then SONG_LIST and ERROR answers.
    await using udp = await startServer({ intervalMs: 0 });
    {
      using sock = rawSocket();
      const to = { transport: "udp" as const, ...udp.address };
      await sock.send(encodeControl(FrameType.REQUEST, { op: "list" }), to);
      zero(await receiveFrame(sock, () => true), "udp");
    }
    const { first, frames } = await rawSongStream(udp, SHORT_MP3);
    const control = [first.answer, ...frames.map((a) => a.frame)].filter((f) =>
      f.type !== FrameType.DATA
    );
    assertEquals(control.map((f) => frameTypeName(f.type)), [
      "ACCEPT",
      "STREAM_INFO",
      "END",
      "END",
    ]);
    for (const f of control) zero(f, "udp");
    using sock = rawSocket();
    const list = await handshake(sock, udp.address, { op: "list" });
    zero(list.answer, "udp");
    const missing = await handshake(sock, udp.address, { op: "song", song: "no-such-song" });
    assertEquals(missing.answer.type, FrameType.ERROR);
    zero(missing.answer, "udp");
    // TLS answers, and what the radio pushes (NOW_PLAYING; STREAM_INFO's timestamp).
    const dir = await makeSongs({ "a.wav": [2], "b.wav": [2] });
    await using tls = await startTestServer(dir);
    using c = await tlsRaw(tls.port, tls.caCert);
    const answers: Frame[] = [];
    await c.request({ op: "list" });
    answers.push(...await c.until(FrameType.SONG_LIST));
    await c.request({ op: "get", song: "a.wav" });
    answers.push(...(await c.until(FrameType.END)).filter((f) => f.type !== FrameType.DATA));
    await c.request({ op: "get", song: "nope.wav" });
    answers.push(...await c.until(FrameType.ERROR));
    await c.request({ op: "play", song: "b.wav" });
    answers.push(...await c.until(FrameType.PLAY_RESULT));
    await c.request({ op: "requests" });
    answers.push(...await c.until(FrameType.QUEUE));
    await c.request({ op: "now_playing" });
    answers.push(...await c.until(FrameType.NOW_PLAYING));
    await c.request({ op: "radio" });
    answers.push(...await c.until(FrameType.ACCEPT));
    assertEquals(answers.length, 8);
    for (const f of answers) zero(f, "tls");
    let pushedInfo = 0;
    let pushedNowPlaying = 0;
    while (pushedInfo < 1 || pushedNowPlaying < 1) {
      const f = await c.next();
      if (f.type === FrameType.STREAM_INFO) {
        assertEquals(f.timestamp, 0, "radio STREAM_INFO timestamp");
        pushedInfo++;
      }
      if (f.type === FrameType.NOW_PLAYING) {
        zero(f, "tls radio");
        pushedNowPlaying++;
      }
    }
  },
);

// ---- Control payloads (§3) ---------------------------------------------------------------

Deno.test("conformance: cookie and token are exactly 32 lowercase hex digits", () => {
  const frame = (type: FrameType, body: unknown) =>
    decodeDatagram(encodeControl(type, body), { maxPayload: 65000 });
  const good = "0123456789abcdef0123456789abcdef";
  const readers: [string, (secret: unknown) => string | undefined][] = [
    ["CHALLENGE cookie", (s) => readChallenge(frame(FrameType.CHALLENGE, { cookie: s })).cookie],
    [
      "REQUEST cookie",
      (s) => readUdpRequest(frame(FrameType.REQUEST, { op: "list", cookie: s })).cookie,
    ],
    [
      "ACCEPT token",
      (s) => readAccept(frame(FrameType.ACCEPT, { op: "radio", maxPayload: 1, token: s })).token,
    ],
    ["HEARTBEAT token", (s) => readSessionControl(frame(FrameType.HEARTBEAT, { token: s })).token],
    ["BYE token", (s) => readSessionControl(frame(FrameType.BYE, { token: s })).token],
  ];
  const bad: unknown[] = [
    good.toUpperCase(),
    good.slice(1),
    `${good}0`,
    `${good.slice(0, 31)}g`,
    ` ${good.slice(1)}`,
    `0x${good.slice(2)}`,
    "",
    123,
    null,
    [good],
  ];
  for (const [what, read] of readers) {
    assertEquals(read(good), good, what);
    for (const b of bad) assertThrows(() => read(b), MessageError, undefined, `${what} ${b}`);
  }
  // What the server issues has that form, and its check refuses any other spelling.
  const check = new AddressCheck();
  const addr = { hostname: "127.0.0.1", port: 4000 };
  for (let i = 0; i < 100; i++) assertMatch(newToken(), HEX32);
  const cookie = check.cookieFor(addr);
  assertMatch(cookie, HEX32);
  assert(check.verify(addr, cookie));
  if (/[a-f]/.test(cookie)) assert(!check.verify(addr, cookie.toUpperCase()));
  assert(!check.verify(addr, `${cookie}0`));
});

Deno.test(
  "conformance: a list offset at or past the total is answered with an empty page (UDP, TLS)",
  opts,
  async () => {
    await using udp = await startServer();
    const total = (await songsCatalog()).songs.length;
    using sock = rawSocket();
    for (const offset of [total, total + 1, 2 ** 53 - 1]) {
      const { answer } = await handshake(sock, udp.address, { op: "list", offset });
      assertEquals(readSongList(answer), { total, offset: total, songs: [] });
    }
    const dir = await makeSongs({ "a.wav": [0.2], "b.wav": [0.2] });
    await using tls = await startTestServer(dir);
    using c = await tlsRaw(tls.port, tls.caCert);
    for (const offset of [2, 3, 2 ** 53 - 1]) {
      await c.request({ op: "list", offset });
      assertEquals(readSongList(await c.next()), { total: 2, offset: 2, songs: [] });
    }
  },
);

// ---- DATA (§4) ---------------------------------------------------------------------------

Deno.test(
  "conformance: an MP3 frame larger than the UDP payload limit gets ERROR internal in place of ACCEPT",
  async () => {
    // 128 kbit/s at 44.1 kHz: frames of 417–418 bytes, more than a 200-byte payload.
    // (The radio side, "the radio skips the song", is not tested here: the radio is being
    // rebuilt as an Opus station stream, which has no MP3 frames to skip.)
    await using udp = await startServer({ maxPayload: 200 });
    using sock = rawSocket();
    const { answer } = await handshake(sock, udp.address, { op: "song", song: SHORT_MP3 });
    assertEquals(frameTypeName(answer.type), "ERROR");
    const error = readError(answer);
    assertEquals(error.code, "internal");
    // §4's message, exactly (the song is named once).
    assertMatch(
      error.message,
      new RegExp(
        `^Cannot stream "${SHORT_MP3}": an MP3 frame of \\d+ bytes does not fit a 200-byte payload$`,
      ),
    );
    assertEquals(udp.stats.streamsCompleted, 0);
  },
);

// ---- UDP server (§5.0–5.2) ---------------------------------------------------------------

Deno.test(
  "conformance: a cookie is valid only for its source IP and port, for 10 to 20 s",
  async () => {
    // The clock: AddressCheck takes one, so validity is checked over whole periods.
    let now = 0;
    const check = new AddressCheck(() => now);
    const addr = { hostname: "127.0.0.1", port: 4000 };
    for (const issued of [0, 1, 5_000, 9_999, 123_456_789]) {
      now = issued;
      const cookie = check.cookieFor(addr);
      assert(!check.verify({ ...addr, port: 4001 }, cookie), "another port");
      assert(!check.verify({ ...addr, hostname: "127.0.0.2" }, cookie), "another IP");
      assert(!check.verify({ hostname: "::ffff:127.0.0.1", port: 4000 }, cookie), "IP spelling");
      for (const age of [0, 1, 9_999, COOKIE_PERIOD_MS]) {
        now = issued + age;
        assert(check.verify(addr, cookie), `valid at ${age} ms`);
      }
      // Valid for at least 10 s and at most 20 s: expired 20 s after it was issued.
      now = issued + 2 * COOKIE_PERIOD_MS;
      assert(!check.verify(addr, cookie), "expired after 20 s");
      // The last instant it is valid is the end of the period after the one it was issued in.
      now = (Math.floor(issued / COOKIE_PERIOD_MS) + 2) * COOKIE_PERIOD_MS - 1;
      assert(check.verify(addr, cookie));
      now++;
      assert(!check.verify(addr, cookie));
      const lifetime = now - issued;
      assert(lifetime > 10_000 && lifetime <= 20_000, `lifetime ${lifetime} ms`);
    }
    // On the wire: a cookie echoed from another port or another IP gets a new CHALLENGE only.
    await using udp = await startServer();
    const to = { transport: "udp" as const, ...udp.address };
    using owner = rawSocket();
    await owner.send(encodeControl(FrameType.REQUEST, { op: "list" }), to);
    const { cookie } = readChallenge(
      await receiveFrame(owner, (f) => f.type === FrameType.CHALLENGE),
    );
    for (const thief of [rawSocket(), rawSocket("127.0.0.2")]) {
      using s = thief;
      await s.send(encodeControl(FrameType.REQUEST, { op: "list", cookie }), to);
      const answers = await receiveFor(s, 300);
      assertEquals(answers.map((a) => frameTypeName(a.frame.type)), ["CHALLENGE"]);
      assertNotEquals(readChallenge(answers[0]!.frame).cookie, cookie);
    }
    assertEquals(udp.stats.badCookies, 2);
    await owner.send(encodeControl(FrameType.REQUEST, { op: "list", cookie }), to);
    assertEquals(
      (await receiveFrame(owner, (f) => f.type !== FrameType.CHALLENGE)).type,
      FrameType.SONG_LIST,
    );
  },
);

Deno.test("conformance: get, play and requests over UDP get ERROR bad_request after validation", async () => {
  await using udp = await startServer();
  using sock = rawSocket();
  for (
    const body of [{ op: "get", song: SHORT_MP3 }, { op: "play", song: "1" }, { op: "requests" }]
  ) {
    // handshake() insists on a CHALLENGE first: nothing else before validation.
    const { answer } = await handshake(sock, udp.address, body);
    assertEquals(frameTypeName(answer.type), "ERROR");
    assertEquals(readError(answer).code, "bad_request");
  }
  assertEquals(udp.stats.streamsStarted, 0);
  assertEquals(udp.clientCount, 0);
});

Deno.test(
  "conformance: flow control — no DATA with sequence ≥ ack + 64; without acks the window moves by 16 after 250 ms",
  async () => {
    await using udp = await startServer({ intervalMs: 0 });
    const to = { transport: "udp" as const, ...udp.address };
    {
      // Cut the song once, so the stream below starts at once (its stall clock starts at ACCEPT).
      using warm = rawSocket();
      const h = await handshake(warm, udp.address, { op: "song", song: LONG_MP3 });
      await receiveFrame(warm, (f) => f.type === FrameType.STREAM_INFO);
      await warm.send(
        encodeControl(FrameType.BYE, { token: h.token }, { streamId: h.streamId }),
        to,
      );
    }
    using sock = rawSocket();
    const h = await handshake(sock, udp.address, { op: "song", song: LONG_MP3 });
    const t0 = performance.now();
    // No acknowledgement at all: 0..63 at once, then 16 more per 250 ms stall.
    const noAck = await receiveFor(
      sock,
      5000,
      (a) => a.frame.type === FrameType.DATA && a.frame.sequence >= 79,
    );
    const data = noAck.filter((a) => a.frame.type === FrameType.DATA);
    assertEquals(data.map((a) => a.frame.sequence), Array.from({ length: 80 }, (_, i) => i));
    for (const a of data) {
      const seq = a.frame.sequence;
      const since = a.at - t0;
      if (seq >= 64) assertGreaterOrEqual(since, 200, `seq ${seq} came ${since} ms after ACCEPT`);
    }
    assertEquals(longestPauseBefore(data), 64, "the stall is before DATA 64, not earlier");
    // Acknowledge 80: the window opens to 143 at once, and 144 waits for the next stall.
    const ack = 80;
    const tAck = performance.now();
    await sock.send(
      encodeControl(FrameType.HEARTBEAT, { token: h.token, ack }, { streamId: h.streamId }),
      to,
    );
    const withAck = await receiveFor(
      sock,
      5000,
      (a) => a.frame.type === FrameType.DATA && a.frame.sequence >= ack + 64,
    );
    const seqs = withAck.filter((a) => a.frame.type === FrameType.DATA);
    assertEquals(seqs.map((a) => a.frame.sequence), Array.from({ length: 65 }, (_, i) => ack + i));
    assertEquals(longestPauseBefore(seqs), ack + 64, "the window reaches ack + 63");
    const beyond = seqs.at(-1)!;
    assertGreaterOrEqual(beyond.at - tAck, 200, "DATA ack+64 was sent before the 250 ms stall");
    await sock.send(encodeControl(FrameType.BYE, { token: h.token }, { streamId: h.streamId }), to);
  },
);

/** The sequence number of the DATA frame after the longest pause between arrivals. */
function longestPauseBefore(data: Arrival[]): number {
  let best = 1;
  for (let i = 1; i < data.length; i++) {
    if (data[i]!.at - data[i - 1]!.at > data[best]!.at - data[best - 1]!.at) best = i;
  }
  return data[best]!.frame.sequence;
}

Deno.test("conformance: END is sent twice, 20 ms apart, and says what was sent", async () => {
  await using udp = await startServer({ intervalMs: 0 });
  const { first, frames } = await rawSongStream(udp, SHORT_MP3);
  const ends = frames.filter((a) => a.frame.type === FrameType.END);
  assertEquals(ends.length, 2);
  assertEquals(ends[0]!.raw, ends[1]!.raw);
  assertEquals(ends[0]!.frame.streamId, first.streamId);
  assertGreaterOrEqual(ends[1]!.at - ends[0]!.at, 18, "the second END came too soon");
  const data = frames.filter((a) => a.frame.type === FrameType.DATA);
  assertEquals(readEnd(ends[0]!.frame), {
    packets: data.length,
    bytes: data.reduce((n, a) => n + a.frame.payload.length, 0),
  });
  assertEquals(frames.at(-1), ends[1], "nothing after the second END");
});

Deno.test(
  "conformance: a second REQUEST while a stream runs — same song: same ACCEPT, no second stream; another song: restart without END",
  async () => {
    await using udp = await startServer(); // real-time pacing: the stream runs for seconds
    using sock = rawSocket();
    const to = { transport: "udp" as const, ...udp.address };
    const h = await handshake(sock, udp.address, { op: "song", song: SHORT_MP3 });
    const info = await receiveFrame(sock, (f) => f.type === FrameType.STREAM_INFO);
    await receiveFrame(sock, (f) => f.type === FrameType.DATA && f.sequence >= 2);
    // The same song again (a retry whose ACCEPT was lost): ACCEPT and STREAM_INFO again.
    await sock.send(
      encodeControl(FrameType.REQUEST, { op: "song", song: SHORT_MP3, cookie: h.cookie }),
      to,
    );
    const again = await receiveFrame(sock, (f) => f.type === FrameType.ACCEPT);
    assertEquals(again.streamId, h.streamId);
    assertEquals(readAccept(again).token, h.token);
    const info2 = await receiveFrame(sock, (f) => f.type === FrameType.STREAM_INFO);
    assertEquals(info2.streamId, h.streamId);
    assertEquals(readStreamInfo(info2), readStreamInfo(info));
    const more = await receiveFrame(sock, (f) => f.type === FrameType.DATA);
    assertEquals(more.streamId, h.streamId);
    assertGreater(more.sequence, 2, "the stream went on; it did not start again");
    assertEquals(udp.stats.streamsStarted, 1);
    // Another song: the running stream stops at once, without END; a new stream and token.
    await sock.send(
      encodeControl(FrameType.REQUEST, { op: "song", song: LONG_MP3, cookie: h.cookie }),
      to,
    );
    const next = await receiveFrame(sock, (f) => f.type === FrameType.ACCEPT);
    assertNotEquals(next.streamId, h.streamId);
    assertNotEquals(readAccept(next).token, h.token);
    const after = await receiveFor(sock, 400);
    assertEquals(after.filter((a) => a.frame.streamId === h.streamId), []);
    assert(
      after.some((a) => a.frame.type === FrameType.DATA && a.frame.streamId === next.streamId),
    );
    assertEquals(udp.stats.streamsStarted, 2);
    assertEquals(udp.clientCount, 1);
  },
);

Deno.test("conformance: radio ACCEPT heartbeatMs is max(500, floor(T / 4))", async () => {
  for (const [timeout, expected] of [[1000, 500], [2001, 500], [3000, 750], [4003, 1000]]) {
    await using udp = await startServer({ heartbeatTimeoutMs: timeout });
    using sock = rawSocket();
    const { answer } = await handshake(sock, udp.address, { op: "radio" });
    assertEquals(readAccept(answer).heartbeatMs, expected, `T = ${timeout} ms`);
  }
  await using udp = await startServer();
  using sock = rawSocket();
  const { answer } = await handshake(sock, udp.address, { op: "radio" });
  assertEquals(readAccept(answer).heartbeatMs, 2500, "the default T = 10 s");
});

Deno.test(
  "conformance: UDP radio — a joining listener gets the last ≈400 ms at once; NOW_PLAYING and STREAM_INFO repeat every 5 s",
  async () => {
    await using udp = await startServer();
    using a = rawSocket();
    const started = performance.now();
    await handshake(a, udp.address, { op: "radio" });
    // A listens for over a second of station time, then B joins.
    const early = await receiveFor(
      a,
      3000,
      (x, all) =>
        x.frame.type === FrameType.DATA &&
        x.frame.timestamp - all.find((y) => y.frame.type === FrameType.DATA)!.frame.timestamp >
          1_000_000,
    );
    const lastA = early.filter((x) => x.frame.type === FrameType.DATA).at(-1)!.frame;
    using b = rawSocket();
    await handshake(b, udp.address, { op: "radio" });
    const welcome = await receiveFor(b, 1000, (x) => x.frame.type === FrameType.DATA);
    assertEquals(welcome.map((x) => frameTypeName(x.frame.type)).slice(0, 2), [
      "NOW_PLAYING",
      "STREAM_INFO",
    ]);
    const burstFirst = welcome.at(-1)!.frame;
    const back = lastA.timestamp - burstFirst.timestamp;
    assert(back >= 200_000 && back <= 600_000, `the join burst reaches ${back} µs back`);
    assertLess(burstFirst.sequence, lastA.sequence);
    // A keeps listening: within 5 s and a sweep of the server's start it gets both again.
    const rest = await receiveFor(a, Math.max(0, started + 6500 - performance.now()));
    const all = [...early, ...rest];
    const infos = all.filter((x) => x.frame.type === FrameType.STREAM_INFO);
    const repeatedInfo = infos.some((x, i) =>
      infos.slice(0, i).some((y) => String(y.raw) === String(x.raw))
    );
    assert(repeatedInfo, "no STREAM_INFO was repeated");
    const nowPlaying = all.filter((x) => x.frame.type === FrameType.NOW_PLAYING).map((x) =>
      readNowPlaying(x.frame)
    );
    assert(
      nowPlaying.some((n, i) =>
        nowPlaying.slice(0, i).some((m) => m.title === n.title) && n.positionMs > 0
      ),
      "no NOW_PLAYING was repeated",
    );
  },
);

// ---- UDP client (§5.1) -------------------------------------------------------------------

Deno.test(
  "conformance: udp-client acknowledges every 16 DATA frames and at least once a second",
  opts,
  async () => {
    await using udp = await startServer({ intervalMs: 0 });
    const acks: number[] = [];
    const ackTimes: number[] = [];
    const onUpstream = (d: Uint8Array) => {
      try {
        const f = decodeDatagram(d);
        if (f.type !== FrameType.HEARTBEAT) return;
        const { ack } = readSessionControl(f);
        if (ack !== undefined) {
          acks.push(ack);
          ackTimes.push(performance.now());
        }
      } catch { /* not ours to judge */ }
    };
    {
      // Every 16: with no loss the count-driven acks name 16, 32, 48, ... exactly.
      await using relay = startLyingRelay(udp.address, (_, raw) => [raw], onUpstream);
      const report = await playSong(relay.address, SHORT_MP3, udpClientOptions());
      assertEquals(report.ending, "end");
      const expected = Array.from(
        { length: Math.floor(report.received / 16) },
        (_, i) => 16 * (i + 1),
      );
      // The last acks may still be on their way through the relay when playSong returns.
      await until(() => expected.every((n) => acks.includes(n)), 1000).catch(() => {});
      assertEquals(expected.filter((n) => !acks.includes(n)), []);
    }
    // Every second: the relay lets DATA 0..19 through, then nothing more.
    acks.length = 0;
    ackTimes.length = 0;
    let silenceFrom: number | undefined;
    await using relay = startLyingRelay(udp.address, (f, raw) => {
      if (f.type === FrameType.DATA && f.sequence >= 20) {
        silenceFrom ??= performance.now();
        return [];
      }
      return f.type === FrameType.END ? [] : [raw];
    }, onUpstream);
    const stop = new AbortController();
    const playing = playSong(relay.address, SHORT_MP3, {
      ...udpClientOptions(stop.signal),
      timeoutMs: 10_000,
    });
    await until(() => silenceFrom !== undefined);
    await new Promise((r) => setTimeout(r, 2500));
    stop.abort();
    await playing;
    // Acks sent for DATA 0..19 may still be reaching the relay at first: skip 200 ms.
    const inSilence = acks.filter((_, i) => ackTimes[i]! >= silenceFrom! + 200);
    assertGreaterOrEqual(inSilence.length, 2, `${inSilence.length} acks in 2.3 s of silence`);
    assertEquals(new Set(inSilence), new Set([20]));
  },
);

Deno.test(
  "conformance: with both ENDs lost udp-client ends after --timeout with ending timeout",
  opts,
  async () => {
    await using udp = await startServer({ intervalMs: 0 });
    let endsDropped = 0;
    await using relay = startLyingRelay(udp.address, (f, raw) => {
      if (f.type !== FrameType.END) return [raw];
      endsDropped++;
      return [];
    });
    const report = await playSong(relay.address, SHORT_MP3, {
      ...udpClientOptions(),
      timeoutMs: 1000,
    });
    assertEquals(report.ending, "timeout");
    assertEquals(endsDropped, 2);
    assertEquals(report.lost, 0);
    assertGreater(report.received, 0);
  },
);

// ---- TLS server (§5.3) -------------------------------------------------------------------

Deno.test(
  "conformance: tls-server speaks TLS 1.2 and 1.3 only (openssl s_client)",
  opts,
  async () => {
    const dir = await makeSongs({ "a.wav": [0.2] });
    await using tls = await startTestServer(dir);
    const sClient = async (version: string) => {
      const out = await new Deno.Command("openssl", {
        args: [
          "s_client",
          "-connect",
          `127.0.0.1:${tls.port}`,
          "-servername",
          "localhost",
          "-CAfile",
          tls.certs.caCert,
          version,
          // Let this client offer the old versions at all (OpenSSL 3 refuses them by default).
          "-cipher",
          "DEFAULT@SECLEVEL=0",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, text: new TextDecoder().decode(out.stdout) };
    };
    for (const [flag, name] of [["-tls1", "TLSv1"], ["-tls1_1", "TLSv1.1"]]) {
      const r = await sClient(flag!);
      // The client did offer that version (so the refusal is the server's), and got no session.
      assert(r.text.includes(`Protocol  : ${name}\n`), `${flag}: the client did not try ${name}`);
      assert(r.text.includes("Cipher is (NONE)"), `${flag}: a session was set up:\n${r.text}`);
      assertNotEquals(r.code, 0);
    }
    const v12 = await sClient("-tls1_2");
    assertEquals(v12.code, 0);
    assert(v12.text.includes("Protocol  : TLSv1.2\n"), v12.text);
    const v13 = await sClient("-tls1_3");
    assertEquals(v13.code, 0);
    assert(v13.text.includes("New, TLSv1.3, Cipher is "), v13.text);
  },
);

Deno.test(
  "conformance: TLS answers have stream id 0; pushed radio frames the station's nonzero id, the same for every listener",
  opts,
  async () => {
    const dir = await makeSongs({ "a.wav": [3], "b.wav": [3] });
    await using tls = await startTestServer(dir);
    using one = await tlsRaw(tls.port, tls.caCert);
    using two = await tlsRaw(tls.port, tls.caCert);
    const stationIds = new Set<number>();
    for (const c of [one, two]) {
      await c.request({ op: "radio" });
      const accept = await c.next();
      assertEquals([frameTypeName(accept.type), accept.streamId], ["ACCEPT", 0]);
      for (let pushed = 0; pushed < 3;) {
        const f = await c.next();
        if (
          ([FrameType.NOW_PLAYING, FrameType.STREAM_INFO, FrameType.DATA] as FrameType[]).includes(
            f.type,
          )
        ) {
          stationIds.add(f.streamId);
          pushed++;
        }
      }
    }
    assertEquals(stationIds.size, 1, "one station id for every listener");
    const [station] = stationIds;
    assertNotEquals(station, 0);
    // Answers on a subscribed connection: stream id 0 amid pushed frames with the station's id.
    const asked: [Record<string, unknown>, FrameType][] = [
      [{ op: "now_playing" }, FrameType.NOW_PLAYING],
      [{ op: "list" }, FrameType.SONG_LIST],
      [{ op: "play", song: "b.wav" }, FrameType.PLAY_RESULT],
      [{ op: "requests" }, FrameType.QUEUE],
      [{ op: "nonsense" }, FrameType.ERROR],
    ];
    for (const [body, type] of asked) {
      await one.request(body);
      const seen = await one.until(type, 0);
      for (const f of seen.slice(0, -1)) assertEquals(f.streamId, station, frameTypeName(f.type));
    }
    // A download's STREAM_INFO, DATA and END are answers too.
    using three = await tlsRaw(tls.port, tls.caCert);
    await three.request({ op: "get", song: "a.wav" });
    const got = await three.until(FrameType.END, 0);
    assertEquals(got.map((f) => f.streamId).filter((id) => id !== 0), []);
    assertEquals(frameTypeName(got[0]!.type), "STREAM_INFO");
  },
);

Deno.test(
  "conformance: get with an offset beyond the end, or while subscribed to the radio, gets ERROR bad_request",
  opts,
  async () => {
    const dir = await makeSongs({ "a.wav": [0.5], "b.wav": [0.5] });
    await using tls = await startTestServer(dir);
    const size = (await Deno.stat(`${dir}/a.wav`)).size;
    using c = await tlsRaw(tls.port, tls.caCert);
    for (const offset of [size + 1, 2 ** 53 - 1]) {
      await c.request({ op: "get", song: "a.wav", offset });
      const f = await c.next();
      assertEquals(frameTypeName(f.type), "ERROR");
      assertEquals(readError(f).code, "bad_request");
    }
    // The end itself is not beyond it: an empty download. And the connection stayed usable.
    await c.request({ op: "get", song: "a.wav", offset: size });
    const empty = await c.until(FrameType.END);
    assertEquals(readStreamInfo(empty[0]!).offset, size);
    assertEquals(readEnd(empty.at(-1)!), { packets: 0, bytes: 0 });
    // Subscribed: the get is answered with ERROR bad_request (stream id 0) and the radio goes on.
    await c.request({ op: "radio" });
    await c.until(FrameType.ACCEPT);
    await c.request({ op: "get", song: "b.wav" });
    const seen = await c.until(FrameType.ERROR, 0);
    assertEquals(readError(seen.at(-1)!).code, "bad_request");
    assertEquals(seen.filter((f) => f.streamId === 0 && f.type !== FrameType.ERROR), []);
    let data: Frame;
    do data = await c.next(); while (data.type !== FrameType.DATA);
    assertNotEquals(data.streamId, 0);
  },
);

Deno.test(
  "conformance: after a client's BYE the TLS server closes the connection",
  opts,
  async () => {
    const dir = await makeSongs({ "a.wav": [0.2] });
    await using tls = await startTestServer(dir, { idleTimeoutMs: 60_000 });
    for (const bye of [new Uint8Array(0), encodeJson({ reason: "done" })]) {
      using c = await tlsRaw(tls.port, tls.caCert);
      await c.request({ op: "list" });
      assertEquals(frameTypeName((await c.next()).type), "SONG_LIST");
      await c.write(encodeFrame({ type: FrameType.BYE, payload: bye }));
      // The server closes: EOF well before the idle timeout (the read is bounded by it).
      const closed = await Promise.race([
        readUntilClosed(c.conn).then(() => "closed"),
        new Promise((r) => setTimeout(() => r("still open"), 5000)),
      ]);
      assertEquals(closed, "closed");
    }
  },
);

Deno.test(
  "conformance: download DATA frames carry at most half the send queue minus 32 bytes",
  opts,
  async () => {
    // 40 s of 8 kHz mono: 640,044 bytes, more than one frame's worth at the default queue.
    const dir = await makeSongs({ "a.wav": [40] });
    const size = (await Deno.stat(`${dir}/a.wav`)).size;
    for (const [queue, limit] of [[undefined, 524_256], [256 * 1024, 131_040]] as const) {
      await using tls = await startTestServer(dir, queue ? { sendQueueBytes: queue } : {});
      using c = await tlsRaw(tls.port, tls.caCert);
      await c.request({ op: "get", song: "a.wav" });
      const got = await c.until(FrameType.END);
      const sizes = got.filter((f) => f.type === FrameType.DATA).map((f) => f.payload.length);
      assertEquals(Math.max(...sizes), limit, `send queue ${queue ?? "default"}`);
      assertEquals(sizes.reduce((a, b) => a + b, 0), size);
    }
  },
);

// ---- The map itself (§8) -----------------------------------------------------------------

Deno.test("conformance: every test PROTOCOL.md §8 cites exists under that exact name", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/PROTOCOL.md", import.meta.url));
  const section = doc.slice(doc.indexOf("## 8. Conformance"));
  const text = section.split(/\s+/).join(" ");
  const cited = [...text.matchAll(/((?:lib|tests)\/[\w/]+\.ts): "([^"]+)"/g)];
  assertGreater(cited.length, 80);
  const missing: string[] = [];
  const sources = new Map<string, string>();
  for (const [, file, name] of cited) {
    if (!sources.has(file!)) {
      const source = await Deno.readTextFile(new URL(`../${file}`, import.meta.url));
      // Names split over lines ("a " +\n "b") read as one string.
      sources.set(file!, source.replace(/"\s*\+\s*"/g, ""));
    }
    if (!sources.get(file!)!.includes(`"${name}"`)) missing.push(`${file}: "${name}"`);
  }
  assertEquals(missing, []);
});
