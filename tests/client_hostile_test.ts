/**
 * Hostile-server tests for the clients (issue #8, items 8–11): tiny lying servers on port 0 —
 * a fake tls-server speaking frames through lib/wire, and a relay in front of the real
 * udp-server that forges datagrams with the stream's id (what an off-path attacker who spoofs
 * the server's address can do) — against the real clients, as lib calls or spawned commands.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertGreater,
  assertRejects,
  assertStringIncludes,
} from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { EventLog } from "../lib/cli/event_log.ts";
import { Output } from "../lib/cli/output.ts";
import { sha256Hex } from "../lib/hash/sha256.ts";
import { PlayoutLimitError } from "../lib/media/playout.ts";
import { type ClientContext, playCommand, radioCommand } from "../lib/tls/client_commands.ts";
import { playSong } from "../lib/udp/client.ts";
import { encodeFrame, FrameType } from "../lib/wire/frame.ts";
import {
  encodeControl,
  MessageError,
  readRequest,
  readStreamInfo,
  type Request,
} from "../lib/wire/messages.ts";
import { readFrames } from "../lib/wire/stream_decoder.ts";
import { makeWav, testCerts } from "./_tls_helpers.ts";
import {
  ffmpegDecode,
  maxDiff,
  MemoryOutput,
  SONGS_DIR,
  startLyingRelay,
  startServer,
} from "./_udp_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const TLS_CLIENT = fromFileUrl(new URL("../cmd/tls_client.ts", import.meta.url));
const UDP_CLIENT = fromFileUrl(new URL("../cmd/udp_client.ts", import.meta.url));

// ---------------------------------------------------------------------------------------------
// A fake tls-server: answers each REQUEST with whatever frames `respond` yields.

type Responder = (
  request: Request,
) => Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

interface FakeTlsServer extends AsyncDisposable {
  port: number;
  caFile: string;
  caCert: string;
  /** Bytes of DATA written so far (all connections). */
  sent: { bytes: number };
}

async function fakeTlsServer(respond: Responder): Promise<FakeTlsServer> {
  const certs = await testCerts();
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(certs.serverCert),
    key: await Deno.readTextFile(certs.serverKey),
  });
  const sent = { bytes: 0 };
  const conns = new Set<Deno.TlsConn>();
  const serve = async (conn: Deno.TlsConn) => {
    try {
      for await (const frame of readFrames(conn, { maxPayload: 65536 })) {
        if (frame.type !== FrameType.REQUEST) continue;
        for await (const bytes of respond(readRequest(frame))) {
          for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
          sent.bytes += bytes.length;
        }
      }
    } catch {
      /* the client left */
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      void serve(conn);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    caFile: certs.caCert,
    caCert: await Deno.readTextFile(certs.caCert),
    sent,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

/** The frames of an honest-looking `get` answer for `bytes`, with `info` fields overridden. */
function getAnswer(bytes: Uint8Array, info: Record<string, unknown>): Uint8Array[] {
  const out = [
    encodeControl(FrameType.STREAM_INFO, {
      title: "song.wav",
      codec: "wav",
      sampleRate: 8000,
      channels: 1,
      durationMs: 1000,
      packets: 1,
      size: bytes.length,
      sha256: sha256Hex(bytes),
      offset: 0,
      ...info,
    }),
  ];
  for (let at = 0, seq = 0; at < bytes.length; at += 65536, seq++) {
    out.push(
      encodeFrame({ type: FrameType.DATA, sequence: seq, payload: bytes.subarray(at, at + 65536) }),
    );
  }
  out.push(encodeControl(FrameType.END, { packets: out.length - 1, bytes: bytes.length }));
  return out;
}

async function runCmd(
  cmd: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cmd, ...args],
    cwd,
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function tlsContext(server: FakeTlsServer, signal: AbortSignal, output?: string): ClientContext {
  return {
    address: { hostname: "localhost", port: server.port },
    connect: { caCerts: [server.caCert], timeoutMs: 10_000 },
    out: new Output("quiet", false),
    log: EventLog.none(),
    signal,
    audio: { output, backend: "null" },
  };
}

function listDir(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

// ---------------------------------------------------------------------------------------------
// Item 8: where a download is written.

Deno.test(
  "hostile: tls-client get/play --save into a folder writes one safe file inside it, whatever the server's title",
  opts,
  async () => {
    const wav = makeWav(0.2);
    const titles = ["../escaped.wav", ".bashrc", "/tmp/soundsock-abs-evil.wav", "..", "CON.wav"];
    let next = 0;
    await using server = await fakeTlsServer((req) => {
      if (req.op !== "get") return [];
      return getAnswer(wav, { title: titles[next++ % titles.length] });
    });
    const root = await Deno.makeTempDir();
    const dir = join(root, "downloads");
    await Deno.mkdir(dir);
    const common = ["--server", `localhost:${server.port}`, "--ca", server.caFile];
    const saved: string[] = [];
    for (const asked of ["beta", "2", "3", "4", "5"]) {
      const r = await runCmd(TLS_CLIENT, ["get", asked, dir, ...common], root);
      assertEquals(r.code, 0, r.stderr);
      saved.push(...listDir(dir).filter((n) => !saved.includes(n)));
    }
    // Asked by name: named after the ask. Asked by number: the title, made safe.
    assertEquals(saved, [
      "beta.wav",
      "bashrc.wav",
      "soundsock-abs-evil.wav",
      "song-4.wav",
      "_CON.wav",
    ]);
    assertEquals(listDir(root), ["downloads"]); // nothing beside the folder
    await assertRejects(() => Deno.stat("/tmp/soundsock-abs-evil.wav"), Deno.errors.NotFound);
    for (const name of saved) assertEquals(await Deno.readFile(join(dir, name)), wav);

    // play --save DIR takes the same path (and `--output` keeps the audio off any device).
    next = 0;
    const r = await runCmd(TLS_CLIENT, [
      "play",
      "1",
      "--save",
      dir,
      "--output",
      join(root, "heard.wav"),
      ...common,
    ], root);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(listDir(root), ["downloads", "heard.wav"]);
    assertEquals(listDir(dir).length, 6); // + escaped.wav
  },
);

// ---------------------------------------------------------------------------------------------
// Item 11: peer text, --quiet --insecure, lying STREAM_INFO.

const EVIL = "evil\x1b]0;pwned\x07\x1b[2J\rline\nerror: fake\u009b31m\u202e";

Deno.test(
  "hostile: server text reaches the terminal with its control characters escaped",
  opts,
  async () => {
    await using server = await fakeTlsServer((req) => {
      if (req.op === "list") {
        return [encodeControl(FrameType.SONG_LIST, {
          total: 1,
          offset: 0,
          songs: [{ index: 1, title: EVIL, codec: "mp3", durationMs: 1000, size: 1 }],
        })];
      }
      if (req.op === "play") {
        return [encodeControl(FrameType.PLAY_RESULT, { result: "requested", message: EVIL })];
      }
      return [encodeControl(FrameType.ERROR, { code: "not_found", message: EVIL })];
    });
    const common = ["--server", `localhost:${server.port}`, "--ca", server.caFile];
    for (const args of [["list"], ["request", "x"], ["get", "x", "/nonexistent-dir"]]) {
      const r = await runCmd(TLS_CLIENT, [...args, ...common]);
      const all = r.stdout + r.stderr;
      assert(
        // deno-lint-ignore no-control-regex
        !/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/.test(all),
        `raw control in ${JSON.stringify(all)}`,
      );
      assertStringIncludes(all, "evil\\x1b]0;pwned\\x07\\x1b[2J\\x0dline\\x0aerror: fake\\x9b31m");
      // No faked lines: one line of output (list: the table's header and one row).
      const lines = args[0] === "list" ? 2 : 1;
      assertEquals(all.trim().split("\n").length, lines, JSON.stringify(all));
    }
  },
);

Deno.test("hostile: --quiet never hides the --insecure warning", opts, async () => {
  await using server = await fakeTlsServer(() => [
    encodeControl(FrameType.SONG_LIST, { total: 0, offset: 0, songs: [] }),
  ]);
  const r = await runCmd(TLS_CLIENT, [
    "list",
    "--insecure",
    "--quiet",
    "--server",
    `localhost:${server.port}`,
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stderr, "warning: --insecure: the server's certificate is NOT verified");
});

Deno.test(
  "hostile: a lying STREAM_INFO (768 kHz, 32 channels, size ≥ 2^53, NaN) is a one-line error and exit 1",
  opts,
  async () => {
    const wav = makeWav(0.1);
    const lies: [Record<string, unknown>, string][] = [
      [{ sampleRate: 768000 }, `"sampleRate" must be an integer in 8000..192000`],
      [{ channels: 32 }, `"channels" must be an integer in 1..8`],
      [{ size: 2 ** 53 }, `"size" must be an integer`],
      [{ sampleRate: "NaN" }, `"sampleRate" must be an integer`],
    ];
    let next = 0;
    await using server = await fakeTlsServer(() => getAnswer(wav, lies[next++]![0]));
    const dir = await Deno.makeTempDir();
    for (const [, message] of lies) {
      const r = await runCmd(TLS_CLIENT, [
        "get",
        "song",
        dir,
        "--server",
        `localhost:${server.port}`,
        "--ca",
        server.caFile,
      ]);
      assertEquals(r.code, 1, r.stderr);
      assertStringIncludes(r.stderr, message);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
      assertEquals(listDir(dir), []); // nothing saved
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Item 10: decode bombs and floods.

Deno.test(
  "hostile: a FLAC that decodes to far more than announced is refused after the announced length",
  opts,
  async () => {
    const dir = await Deno.makeTempDir();
    const bomb = join(dir, "bomb.flac");
    // 5 minutes of digital silence: ~50 KB of FLAC, 53 MB of PCM; announced as 1 s.
    const made = await new Deno.Command("sox", {
      args: ["-D", "-n", "-r", "44100", "-c", "2", "-b", "16", bomb, "trim", "0", "300"],
    }).output();
    assert(made.success, new TextDecoder().decode(made.stderr));
    const flac = await Deno.readFile(bomb);
    assert(flac.length < 200_000, `bomb is ${flac.length} bytes`);
    await using server = await fakeTlsServer(() =>
      getAnswer(flac, { title: "bomb.flac", codec: "flac", sampleRate: 44100, channels: 2 })
    );
    const out = join(dir, "heard.wav");
    const error = await assertRejects(
      () => playCommand(tlsContext(server, new AbortController().signal, out), "bomb"),
      PlayoutLimitError,
    );
    assertStringIncludes(error.message, "more audio than its STREAM_INFO announced (1 s)");
    // At most the announced second plus the margin (2 % + 1 s) reached the output.
    const bound = 44 + Math.ceil((1 * 1.02 + 1) * 44100) * 4;
    const size = (await Deno.stat(out)).size;
    assert(size <= bound, `wrote ${size} bytes, bound ${bound}`);
    // The spool file is gone.
    const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
    for (const e of Deno.readDirSync(tmp)) assert(!e.name.startsWith("soundsock-flac-"), e.name);
  },
);

Deno.test(
  "hostile: a radio that floods is written to --output no faster than the media clock",
  opts,
  async () => {
    const rate = 8000;
    const chunk = new Uint8Array(32 * 1024); // 2 s of 8 kHz mono each
    await using server = await fakeTlsServer(async function* (req) {
      if (req.op !== "radio") return;
      yield encodeControl(FrameType.ACCEPT, { op: "radio", maxPayload: 1048544 });
      yield encodeControl(FrameType.NOW_PLAYING, {
        title: "flood",
        durationMs: 1000,
        positionMs: 0,
        source: "random",
      });
      yield encodeControl(FrameType.STREAM_INFO, {
        title: "flood",
        codec: "pcm_s16le",
        sampleRate: rate,
        channels: 1,
        durationMs: 1000,
        live: true,
      });
      for (let seq = 0; seq < 1_000_000; seq++) {
        yield encodeFrame({
          type: FrameType.DATA,
          sequence: seq,
          timestamp: seq * 2_000_000,
          flags: seq === 0 ? 1 : 0,
          payload: chunk,
        });
      }
    });
    const dir = await Deno.makeTempDir();
    const out = join(dir, "radio.wav");
    const stop = new AbortController();
    const started = performance.now();
    const running = radioCommand(tlsContext(server, stop.signal, out));
    // Let it run for 2.5 s of wall time: an unpaced client writes hundreds of MB meanwhile.
    await new Promise((r) => setTimeout(r, 2500));
    stop.abort();
    assertEquals(await running, 0);
    const elapsedS = (performance.now() - started) / 1000;
    const size = (await Deno.stat(out)).size;
    // Real time plus the 2 s lead, plus one chunk of slack: not what the server sent.
    const bound = 44 + (elapsedS + 2) * rate * 2 + chunk.length;
    assert(size <= bound, `wrote ${size} bytes in ${elapsedS.toFixed(1)} s (bound ${bound})`);
    // And the server was held back by TCP backpressure instead of filling client memory.
    assert(server.sent.bytes < 64 * 1024 * 1024, `server pushed ${server.sent.bytes} bytes`);
  },
);

// ---------------------------------------------------------------------------------------------
// Item 9 (and 11 on UDP): a relay in front of the real udp-server forges datagrams.

// The relay is tests/_udp_helpers.ts startLyingRelay: the real handshake passes through.

function udpOptions(output?: MemoryOutput, bufferMs = 150) {
  return {
    signal: new AbortController().signal,
    log: EventLog.none(),
    bufferMs,
    timeoutMs: 3000,
    ...(output ? { openOutput: () => Promise.resolve(output) } : {}),
  };
}

Deno.test(
  "hostile: one forged DATA with a huge timestamp neither crashes nor bloats udp-client (PCM)",
  opts,
  async () => {
    await using server = await startServer({ intervalMs: 0 });
    let packets = Infinity;
    await using relay = startLyingRelay(server.address, (f, raw) => {
      if (f.type === FrameType.STREAM_INFO) packets = readStreamInfo(f).packets ?? Infinity;
      if (f.type === FrameType.DATA && f.sequence === packets - 1) {
        // Just past the end: the client would conceal the "gap" up to 2^52 µs (142 years).
        const forged = encodeFrame({
          type: FrameType.DATA,
          streamId: f.streamId,
          sequence: f.sequence + 5,
          timestamp: 2 ** 52,
          payload: new Uint8Array(1200),
        });
        return [raw, forged];
      }
      return [raw];
    });
    const heard = new MemoryOutput();
    const report = await playSong(relay.address, "6", udpOptions(heard));
    assertEquals(report.implausible, 1);
    assertEquals(report.ending, "end");
    assertEquals(report.lost, 0);
    // Exactly the song: no silence for the forged gap, no forged payload.
    const reference = await ffmpegDecode(`${SONGS_DIR}06-harbour-chorale.flac`);
    assertEquals(heard.samples().length, reference.length);
  },
);

Deno.test(
  "hostile: one forged DATA with a sequence jump does not mute the rest of an MP3 stream",
  opts,
  async () => {
    await using server = await startServer({ intervalMs: 0 });
    await using relay = startLyingRelay(server.address, async (f, raw) => {
      if (f.type === FrameType.DATA && f.sequence === 5) {
        const forged = encodeFrame({
          type: FrameType.DATA,
          streamId: f.streamId,
          sequence: f.sequence + 1_000_000,
          timestamp: f.timestamp,
          payload: f.payload.slice(),
        });
        await Promise.resolve();
        return [raw, forged];
      }
      if (f.type === FrameType.DATA && f.sequence === 6) {
        // The network pauses for longer than the jitter buffer waits: the forged packet is
        // all the buffer holds, and would be released as the new "next".
        await new Promise((r) => setTimeout(r, 400));
      }
      return [raw];
    });
    const heard = new MemoryOutput();
    const report = await playSong(relay.address, "04-nocturne.mp3", udpOptions(heard));
    assertEquals(report.implausible, 1);
    assertEquals(report.late, 0);
    assertEquals(report.played, report.expected);
    assertEquals(report.lost, 0);
    const reference = await ffmpegDecode(`${SONGS_DIR}04-nocturne.mp3`);
    assert(maxDiff(heard.samples(), reference) <= 1);
  },
);

Deno.test(
  "hostile: udp-client re-synchronises when the stream itself jumps (consistent run after silence)",
  opts,
  async () => {
    await using server = await startServer({ intervalMs: 0 });
    const JUMP = 3_000_000;
    await using relay = startLyingRelay(server.address, async (f, raw) => {
      if (f.type !== FrameType.DATA || f.sequence < 40) return [raw];
      // From packet 40 on, the "server" numbers packets from a new base, after a 700 ms pause.
      if (f.sequence === 40) await new Promise((r) => setTimeout(r, 700));
      return [encodeFrame({ ...f, sequence: f.sequence + JUMP, timestamp: f.timestamp + 9e9 })];
    });
    const heard = new MemoryOutput();
    const report = await playSong(relay.address, "04-nocturne.mp3", {
      ...udpOptions(heard),
      timeoutMs: 3000,
    });
    assertEquals(report.implausible, 0); // the run was taken back, not dropped
    assertEquals(report.late, 0);
    assertGreater(report.played, 100);
  },
);

Deno.test(
  "hostile: udp-client whose every STREAM_INFO lies fails with a clear error, not an empty result",
  opts,
  async () => {
    await using server = await startServer({ intervalMs: 0 });
    await using relay = startLyingRelay(server.address, (f, raw) => {
      if (f.type !== FrameType.STREAM_INFO) return [raw];
      const info = JSON.parse(new TextDecoder().decode(f.payload));
      return [encodeControl(FrameType.STREAM_INFO, { ...info, sampleRate: 768000 }, {
        streamId: f.streamId,
        sequence: f.sequence,
      })];
    });
    const error = await assertRejects(
      () => playSong(relay.address, "6", udpOptions(new MemoryOutput())),
      MessageError,
    );
    assertStringIncludes(error.message, "no valid STREAM_INFO");
    assertStringIncludes(error.message, `"sampleRate" must be an integer in 8000..192000`);
    // The command: exit 1 and one line, never exit 0 with nothing played.
    const r = await runCmd(UDP_CLIENT, [
      `${relay.address.hostname}:${relay.address.port}`,
      "--song",
      "6",
      "--output",
      join(await Deno.makeTempDir(), "x.wav"),
    ]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(r.stderr, "error: The server sent no valid STREAM_INFO");
  },
);

Deno.test(
  "hostile: udp-client prints a forged title with its control characters escaped",
  opts,
  async () => {
    await using server = await startServer({ intervalMs: 0 });
    await using relay = startLyingRelay(server.address, (f, raw) => {
      if (f.type !== FrameType.STREAM_INFO) return [raw];
      const info = JSON.parse(new TextDecoder().decode(f.payload));
      return [encodeControl(FrameType.STREAM_INFO, { ...info, title: EVIL }, {
        streamId: f.streamId,
        sequence: f.sequence,
      })];
    });
    const r = await runCmd(UDP_CLIENT, [
      `${relay.address.hostname}:${relay.address.port}`,
      "--song",
      "6",
      "--output",
      join(await Deno.makeTempDir(), "x.wav"),
    ]);
    assertEquals(r.code, 0, r.stderr);
    // deno-lint-ignore no-control-regex
    assert(!/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/.test(r.stderr), JSON.stringify(r.stderr));
    assertStringIncludes(
      r.stderr,
      "Playing evil\\x1b]0;pwned\\x07\\x1b[2J\\x0dline\\x0aerror: fake",
    );
  },
);
