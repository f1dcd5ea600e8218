import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { Sha256, sha256File } from "../lib/hash/sha256.ts";
import { ServerRefusedError } from "../lib/tls/client.ts";
import { FrameFlag, FrameType } from "../lib/wire/frame.ts";
import { encodeControl, readNowPlaying, readPlayResult } from "../lib/wire/messages.ts";
import { readFrames } from "../lib/wire/stream_decoder.ts";
import { makeSongs, startTestServer } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "tls: 50 concurrent clients download different songs and all verify SHA-256",
  opts,
  async () => {
    const spec: Record<string, [number, number, number]> = {};
    // Sizes from ~16 KB to ~2.8 MB, so some downloads span several 1 MiB DATA frames.
    for (let i = 0; i < 10; i++) spec[`song-${i}.wav`] = [0.5 + i * 1.6, 22050, 2];
    const dir = await makeSongs(spec);
    // All from 127.0.0.1: lift the per-address cap (tested in tls_hostile_test.ts).
    await using t = await startTestServer(dir, { maxClients: 64, maxClientsPerIp: 0 });
    const names = Object.keys(spec);
    const expected = new Map<string, string>();
    for (const n of names) expected.set(n, await sha256File(join(dir, n)));
    const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
      using client = await t.connect();
      const name = names[i % names.length]!;
      const hash = new Sha256();
      const { info } = await client.download(name, { onData: (p) => void hash.update(p) });
      await client.bye();
      return { name, got: hash.digestHex(), announced: info.sha256 };
    }));
    for (const r of results) {
      assertEquals(r.got, expected.get(r.name), r.name);
      assertEquals(r.announced, expected.get(r.name), r.name);
    }
  },
);

Deno.test(
  "tls: get with an offset resumes; list, unknown song, path traversal → not_found",
  opts,
  async () => {
    const dir = await makeSongs({ "a.wav": [1], "b.wav": [2] });
    await using t = await startTestServer(dir);
    using client = await t.connect();
    const list = await client.list();
    assertEquals(list.map((e) => e.title), ["a.wav", "b.wav"]);
    const full = await Deno.readFile(join(dir, "b.wav"));
    const parts: Uint8Array[] = [];
    const { info } = await client.download("b", {
      offset: 1000,
      onData: (p) => void parts.push(p),
    });
    assertEquals(info.offset, 1000);
    assertEquals(info.size, full.length);
    assertEquals(parts.reduce((n, p) => n + p.length, 0), full.length - 1000);
    assertEquals(parts[0]!.subarray(0, 16), full.subarray(1000, 1016));
    for (
      const name of ["nope", "../deno.json", "/etc/passwd", "..%2fdeno.json", "..", ".", "0", "3"]
    ) {
      const err = await assertRejects(() => client.download(name), ServerRefusedError);
      assertEquals(err.code, "not_found", name);
    }
    // The connection is still usable after refusals.
    assertEquals((await client.list()).length, 2);
  },
);

Deno.test("tls radio: request answers are exact and requests play in order", opts, async () => {
  const dir = await makeSongs({
    "s1.wav": [0.4],
    "s2.wav": [0.4],
    "s3.wav": [0.4],
    "s4.wav": [0.4],
    "s5.wav": [0.4],
  });
  await using t = await startTestServer(dir);
  await t.waitFor((e) => e.event === "song_start");
  using client = await t.connect();
  const current = (await client.nowPlaying()).title;
  const others = ["s1.wav", "s2.wav", "s3.wav", "s4.wav", "s5.wav"].filter((s) => s !== current);
  const wanted = [others[2]!, others[0]!, others[1]!];
  // Subscribe first, so that every song change after the requests is seen.
  using listener = await t.connect();
  const radio = listener.radio();
  const answers = [];
  for (const name of wanted) answers.push(await client.requestSong(name));
  assertEquals(answers.map((a) => a.message), wanted.map((n) => `Song ${n} has been requested!`));
  const again = await client.requestSong(wanted[1]!);
  assertEquals(again, { result: "already_requested", message: "Song has already been requested" });
  assertEquals(await client.requestSong("no-such"), {
    result: "not_found",
    message: "Song does not exist",
  });
  assertEquals((await client.queue()).map((q) => q.title).slice(0, 3), wanted);
  const played: string[] = [];
  for await (const ev of radio) {
    if (ev.type === "now_playing" && ev.nowPlaying.source === "request") {
      played.push(ev.nowPlaying.title);
      if (played.length === 3) break;
    }
  }
  assertEquals(played, wanted);
  assertEquals(await client.queue(), []);
});

Deno.test("tls radio: the current song counts as already requested", opts, async () => {
  const dir = await makeSongs({ "long.wav": [20], "other.wav": [20] });
  await using t = await startTestServer(dir);
  await t.waitFor((e) => e.event === "song_start");
  using client = await t.connect();
  const now = await client.nowPlaying();
  assertEquals((await client.requestSong(now.title)).result, "already_requested");
});

Deno.test("tls radio: 20 listeners receive identical bytes for the same song", opts, async () => {
  const dir = await makeSongs({ "x.wav": [0.6, 16000, 2], "y.wav": [0.6, 16000, 2] });
  await using t = await startTestServer(dir, { radioMaxPayload: 4096, maxClientsPerIp: 0 });
  const clients = await Promise.all(Array.from({ length: 20 }, () => t.connect()));
  try {
    const digests = await Promise.all(clients.map(async (c) => {
      // Skip the song in progress at joining; hash the first complete song.
      let hash: Sha256 | undefined;
      let songs = 0;
      for await (const ev of c.radio()) {
        if (ev.type === "data" && ev.songStart) {
          if (hash) return { title: songs, digest: hash.digestHex() };
          hash = new Sha256();
          songs = ev.sequence;
        }
        if (ev.type === "data" && hash) {
          hash.update(ev.payload);
        }
      }
      throw new Error("radio ended");
    }));
    assert(digests.every((d) => d.digest === digests[0]!.digest && d.title === digests[0]!.title));
  } finally {
    for (const c of clients) c.close();
  }
});

Deno.test("tls radio: the station advances in real time with no listener", opts, async () => {
  const dir = await makeSongs({ "long.wav": [30], "long2.wav": [30] });
  await using t = await startTestServer(dir);
  await t.waitFor((e) => e.event === "song_start");
  using client = await t.connect();
  const a = await client.nowPlaying();
  const t0 = performance.now();
  // Nobody listens; wait on the server's own clock rather than sleeping a fixed time.
  await new Promise((r) => setTimeout(r, 700));
  const b = await client.nowPlaying();
  const wall = performance.now() - t0;
  assertEquals(b.title, a.title);
  const advanced = b.positionMs - a.positionMs;
  assert(Math.abs(advanced - wall) < 150, `advanced ${advanced} ms in ${Math.round(wall)} ms`);
  assertEquals(t.server.listeners, 0);
});

Deno.test(
  "tls radio: a listener is told NOW_PLAYING and STREAM_INFO first, then SONG_START data",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [0.3], "y.wav": [0.3] });
    await using t = await startTestServer(dir);
    using c = await t.connect();
    const kinds: string[] = [];
    for await (const ev of c.radio()) {
      kinds.push(ev.type === "data" ? (ev.songStart ? "start" : "data") : ev.type);
      if (kinds.filter((k) => k === "start").length === 2) break;
    }
    assertEquals(kinds.slice(0, 2), ["now_playing", "stream_info"]);
    const secondStart = kinds.lastIndexOf("start");
    assertEquals(kinds.slice(secondStart - 2, secondStart), ["now_playing", "stream_info"]);
  },
);

Deno.test("tls radio: play/requests answers interleave with the radio stream", opts, async () => {
  const dir = await makeSongs({ "x.wav": [5], "y.wav": [5] });
  await using t = await startTestServer(dir);
  using c = await t.connect();
  const radio = c.radio();
  await radio.next(); // subscribed: ACCEPT seen, first event in
  await c.send({ op: "requests" });
  await c.send({ op: "play", song: "no-such" });
  const answers: number[] = [];
  for await (const ev of radio) {
    if (ev.type === "answer") answers.push(ev.frame.type);
    if (answers.length === 2) break;
  }
  assertEquals(answers, [FrameType.QUEUE, FrameType.PLAY_RESULT]);
});

Deno.test("tls: server full → REJECT server_full (exit status 3)", opts, async () => {
  const dir = await makeSongs({ "x.wav": [1] });
  await using t = await startTestServer(dir, { maxClients: 2 });
  using a = await t.connect();
  using b = await t.connect();
  await a.list();
  await b.list();
  using c = await t.connect();
  const err = await assertRejects(() => c.list(), ServerRefusedError);
  assertEquals(err.code, "server_full");
  assertEquals(err.exitCode, 3);
  await t.waitFor((e) => e.event === "reject");
});

Deno.test("tls: raw frames — PLAY_RESULT and NOW_PLAYING payloads on the wire", opts, async () => {
  const dir = await makeSongs({ "x.wav": [5], "y.wav": [5] });
  await using t = await startTestServer(dir);
  await t.waitFor((e) => e.event === "song_start");
  using c = await t.connect();
  await c.send({ op: "play", song: "y" });
  const f = await c.next();
  assertEquals(f.type, FrameType.PLAY_RESULT);
  assert(["requested", "already_requested"].includes(readPlayResult(f).result));
  await c.send({ op: "now_playing" });
  const n = readNowPlaying(await c.next());
  assert(n.positionMs <= n.durationMs);
});

Deno.test(
  "tls radio: each STREAM_INFO carries the sequence number of the SONG_START frame it describes",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [0.3], "y.wav": [0.3] });
    await using t = await startTestServer(dir);
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: t.port,
      caCerts: [t.caCert],
    });
    try {
      await conn.write(encodeControl(FrameType.REQUEST, { op: "radio" }));
      let announced: number | undefined;
      let checked = 0;
      for await (const f of readFrames(conn)) {
        if (f.type === FrameType.STREAM_INFO) announced = f.sequence;
        if (f.type === FrameType.DATA && (f.flags & FrameFlag.SONG_START) !== 0) {
          assertEquals(f.sequence, announced, "STREAM_INFO.sequence = SONG_START sequence");
          if (++checked === 3) break;
        }
      }
      assertEquals(checked, 3);
    } finally {
      conn.close();
    }
  },
);

// Both TLS engines serve the same protocol: OpenSSL (native/soundsock_tls.c, the default when
// it builds) and Deno's node:tls, used when it cannot.
for (const engine of ["OpenSSL", "node:tls"] as const) {
  Deno.test(
    `tls on ${engine}: downloads verify and radio listeners get identical bytes`,
    opts,
    async () => {
      const dir = await makeSongs({ "x.wav": [0.6, 16000, 2], "y.wav": [1.5, 22050, 2] });
      await using t = await startTestServer(dir, {
        maxClientsPerIp: 0,
        radioMaxPayload: 4096,
        ...(engine === "node:tls"
          ? { nativeTls: { ok: false, reason: "chosen by the test" } as const }
          : {}),
      });
      const listening = await t.waitFor((e) => e.event === "listening");
      assert(
        String(listening.fields.tls).startsWith(engine),
        `engine ${listening.fields.tls}`,
      );
      const expected = await sha256File(join(dir, "y.wav"));
      const downloads = await Promise.all(Array.from({ length: 5 }, async () => {
        using client = await t.connect();
        const hash = new Sha256();
        await client.download("y.wav", { onData: (p) => void hash.update(p) });
        await client.bye();
        return hash.digestHex();
      }));
      assertEquals(downloads, Array(5).fill(expected));
      const listeners = await Promise.all(Array.from({ length: 3 }, () => t.connect()));
      try {
        const firstSongs = await Promise.all(listeners.map(async (c) => {
          let hash: Sha256 | undefined;
          let sequence = -1;
          for await (const ev of c.radio()) {
            if (ev.type !== "data") continue;
            if (ev.songStart) {
              if (hash) return `${sequence} ${hash.digestHex()}`;
              hash = new Sha256();
              sequence = ev.sequence;
            }
            hash?.update(ev.payload);
          }
          throw new Error("radio ended");
        }));
        assertEquals(new Set(firstSongs).size, 1, firstSongs.join(", "));
      } finally {
        for (const c of listeners) c.close();
      }
    },
  );
}
