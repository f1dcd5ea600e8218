import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { encodeControl, encodeFrame, type Frame, FrameType } from "../lib/wire/mod.ts";
import { MAX_CONTROL_PAYLOAD, readError } from "../lib/wire/messages.ts";
import { readFrames } from "../lib/wire/stream_decoder.ts";
import { createCertificates } from "../lib/tls/certs.ts";
import { ServerRefusedError, TlsSongClient } from "../lib/tls/client.ts";
import { TlsConnectError } from "../lib/tls/connect.ts";
import { makeSongs, readUntilClosed, startTestServer, testCerts } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function tlsConnect(port: number, caCert: string): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [caCert] });
  await conn.handshake();
  return conn;
}

/** Every frame the server sends until it closes the connection. */
async function framesUntilClosed(conn: Deno.Conn): Promise<Frame[]> {
  const frames: Frame[] = [];
  try {
    for await (const f of readFrames(conn)) frames.push(f);
  } catch (error) {
    if (!/reset|closed|eof|close_notify/i.test((error as Error).message)) throw error;
  }
  return frames;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

Deno.test(
  "hostile: plaintext client on the TLS port is dropped; the server keeps serving",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir);
    const plain = await Deno.connect({ hostname: "127.0.0.1", port: t.port });
    await writeAll(plain, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await readUntilClosed(plain);
    plain.close();
    await t.waitFor((e) => e.event === "handshake_failed");
    using c = await t.connect();
    assertEquals((await c.list()).length, 1);
  },
);

Deno.test(
  "hostile: a client that never handshakes is given up on after the handshake timeout",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir, { handshakeTimeoutMs: 300 });
    using _plain = await Deno.connect({ hostname: "127.0.0.1", port: t.port });
    const started = performance.now();
    const e = await t.waitFor((e) => e.event === "handshake_failed");
    const ms = performance.now() - started;
    assert(ms >= 250 && ms < 3000, `gave up after ${ms} ms`);
    assert(String(e.fields.error).includes("no TLS handshake within 300 ms"));
    // The server closed its TCP socket: this end reads EOF.
    assertEquals((await readUntilClosed(_plain)).length, 0);
    assertEquals(t.server.stats.active, 0);
    using c = await t.connect();
    assertEquals((await c.list()).length, 1);
  },
);

Deno.test(
  "hostile: an idle client (handshake, then nothing) gets ERROR timeout and is closed",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir, { idleTimeoutMs: 300 });
    using conn = await tlsConnect(t.port, t.caCert);
    const frames = [];
    for await (const f of readFrames(conn)) frames.push(f);
    assertEquals(frames.length, 1);
    assertEquals(readError(frames[0]!).code, "timeout");
  },
);

Deno.test("hostile: garbage after the handshake closes the connection", opts, async () => {
  const dir = await makeSongs({ "x.wav": [1] });
  await using t = await startTestServer(dir);
  using conn = await tlsConnect(t.port, t.caCert);
  await writeAll(conn, crypto.getRandomValues(new Uint8Array(4096)));
  const frames = await framesUntilClosed(conn);
  assertEquals(frames.map((f) => f.type), [FrameType.ERROR]);
  assertEquals(readError(frames[0]!).code, "bad_request");
  const e = await t.waitFor((e) => e.event === "bad_frame");
  assertEquals(e.fields.code, "magic");
});

Deno.test(
  "hostile: a control header announcing more than 64 KiB is refused from the header alone",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir);
    // 1 MiB − 32 is a valid stream frame size, but clients only send control frames (≤ 64 KiB):
    // the server must not wait for (or buffer) the payload.
    for (const announced of [MAX_CONTROL_PAYLOAD + 1, 1024 * 1024 - 32]) {
      using conn = await tlsConnect(t.port, t.caCert);
      const header = encodeFrame({ type: FrameType.REQUEST, payload: new Uint8Array(0) }).slice(
        0,
        32,
      );
      new DataView(header.buffer).setUint32(24, announced);
      await writeAll(conn, header);
      const frames = await framesUntilClosed(conn);
      assertEquals(frames.map((f) => f.type), [FrameType.ERROR], `announced ${announced}`);
      assertEquals(readError(frames[0]!).code, "bad_request");
    }
    const refused = t.events.filter((e) => e.event === "bad_frame");
    assertEquals(refused.map((e) => e.fields.code), ["too_large", "too_large"]);
  },
);

Deno.test(
  "hostile: bad JSON, unknown op and wrong frame types get ERROR bad_request; the connection stays",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir);
    const bad = [
      encodeFrame({ type: FrameType.REQUEST, payload: new TextEncoder().encode("{not json") }),
      encodeControl(FrameType.REQUEST, { op: "dance" }),
      encodeControl(FrameType.REQUEST, { op: "get" }),
      encodeControl(FrameType.REQUEST, ["list"]),
      encodeControl(FrameType.STREAM_INFO, { title: "x" }),
      encodeFrame({ type: FrameType.REQUEST, payload: new Uint8Array([0xff, 0xfe]) }),
    ];
    // TlsSongClient only sends valid requests: use a raw connection.
    using raw = await tlsConnect(t.port, t.caCert);
    for (const frame of bad) await writeAll(raw, frame);
    await writeAll(raw, encodeControl(FrameType.REQUEST, { op: "list" }));
    const it = readFrames(raw);
    for (let i = 0; i < bad.length; i++) {
      const { value } = await it.next();
      assertEquals(value!.type, FrameType.ERROR, `answer ${i}`);
      assertEquals(readError(value!).code, "bad_request");
    }
    assertEquals((await it.next()).value!.type, FrameType.SONG_LIST);
  },
);

Deno.test(
  "hostile: a radio listener that stops reading is dropped (too_slow); others keep listening",
  opts,
  async () => {
    // The PCM station (48 kHz stereo s16le) is 192 kB/s: a stalled reader fills the kernel's
    // socket buffers and then the 256 KiB queue within seconds; the good listener (same process)
    // keeps up with room to spare.
    const dir = await makeSongs({ "a.wav": [12, 48000, 2], "b.wav": [12, 48000, 2] });
    await using t = await startTestServer(dir, {
      sendQueueBytes: 256 * 1024,
      radioMaxPayload: 16384,
      radioCodec: "pcm",
    });
    using good = await t.connect();
    let data = 0;
    let afterDrop = 0;
    let dropped = false;
    const listening = (async () => {
      for await (const ev of good.radio()) {
        if (ev.type !== "data") continue;
        data++;
        if (dropped && ++afterDrop >= 5) return;
      }
    })();
    using slow = await tlsConnect(t.port, t.caCert);
    await writeAll(slow, encodeControl(FrameType.REQUEST, { op: "radio" }));
    const started = performance.now();
    await t.waitFor((e) => e.event === "too_slow", 60_000);
    dropped = true;
    const ms = Math.round(performance.now() - started);
    // The good listener keeps receiving fresh data after the drop.
    await listening;
    assert(data > 5, `good listener got ${data} packets; slow one dropped after ${ms} ms`);
    assertEquals(afterDrop, 5);
  },
);

Deno.test("hostile: path traversal names never resolve", opts, async () => {
  const dir = await makeSongs({ "x.wav": [1] });
  await Deno.symlink("/etc/passwd", join(dir, "evil.wav"));
  await using t = await startTestServer(dir);
  using c = await t.connect();
  for (
    const name of [
      "../deno.json",
      "/etc/passwd",
      "..%2fetc%2fpasswd",
      "..\\x.wav",
      "evil.wav",
      "evil",
    ]
  ) {
    const err = await assertRejects(() => c.download(name), ServerRefusedError, undefined, name);
    assertEquals(err.code, "not_found");
  }
});

Deno.test(
  "tls trust: wrong CA and wrong host name are refused with a clear message",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    // Listen on 127.0.0.2 (loopback, but not a name in the certificate).
    await using t = await startTestServer(dir, { hostname: "127.0.0.2" });
    const other = await createCertificates(await Deno.makeTempDir({ prefix: "soundsock-other-" }));
    const otherCa = await Deno.readTextFile(other.caCert);
    const wrongCa = await assertRejects(
      () => TlsSongClient.connect({ hostname: "127.0.0.2", port: t.port }, { caCerts: [otherCa] }),
      TlsConnectError,
    );
    assertEquals(wrongCa.reason, "unknown_ca");
    assert(wrongCa.message.includes("certificate signed by an unknown authority — pass --ca FILE"));
    const noCa = await assertRejects(
      () => TlsSongClient.connect({ hostname: "127.0.0.2", port: t.port }),
      TlsConnectError,
    );
    assertEquals(noCa.reason, "unknown_ca");
    const wrongName = await assertRejects(
      () => TlsSongClient.connect({ hostname: "127.0.0.2", port: t.port }, { caCerts: [t.caCert] }),
      TlsConnectError,
    );
    assertEquals(wrongName.reason, "hostname");
    assert(wrongName.message.includes("not valid for the name 127.0.0.2"), wrongName.message);
  },
);

Deno.test(
  "tls trust: --pin accepts exactly the server certificate; --insecure connects",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir);
    const certs = await testCerts();
    const address = { hostname: "localhost", port: t.port };
    using pinned = await TlsSongClient.connect(address, { pin: certs.serverPin });
    assertEquals((await pinned.list()).length, 1);
    const bad = await assertRejects(
      () => TlsSongClient.connect(address, { pin: "0".repeat(64) }),
      TlsConnectError,
    );
    assertEquals(bad.reason, "pin");
    using insecure = await TlsSongClient.connect(address, { insecure: true });
    assertEquals(insecure.peerPin, certs.serverPin);
    assertEquals((await insecure.list()).length, 1);
  },
);

Deno.test("tls trust: connection refused says so", opts, async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const err = await assertRejects(
    () => TlsSongClient.connect({ hostname: "127.0.0.1", port }),
    TlsConnectError,
  );
  assert(
    err.message.startsWith(`Cannot connect to 127.0.0.1:${port}: connection refused`),
    err.message,
  );
});

Deno.test(
  "hostile: a download client that never reads costs the server at most its send-queue bound",
  opts,
  async () => {
    const dir = await makeSongs({ "big.wav": [120, 44100, 2] }); // ≈ 21 MB
    const sendQueueBytes = 1024 * 1024;
    await using t = await startTestServer(dir, { sendQueueBytes });
    const stalled: Deno.TlsConn[] = [];
    for (let i = 0; i < 5; i++) {
      const conn = await tlsConnect(t.port, t.caCert);
      await writeAll(conn, encodeControl(FrameType.REQUEST, { op: "get", song: "big.wav" }));
      stalled.push(conn);
    }
    try {
      // Long enough for the kernel buffers to fill and the server to stop making progress.
      let peak = 0;
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 100));
        peak = Math.max(peak, ...t.server.clientBufferedBytes());
      }
      assert(peak > 0, "the downloads did not start");
      // The bound (which includes the block being read and the write in flight) plus the
      // ciphertext of that one write (a 64 KiB slice and its record overhead).
      assert(peak <= sendQueueBytes + 66 * 1024, `a stalled client holds ${peak} bytes`);
      // Others are still served meanwhile.
      using c = await t.connect();
      assertEquals((await c.list()).length, 1);
    } finally {
      for (const c of stalled) c.close();
    }
  },
);

Deno.test(
  "hostile: a HEARTBEAT-only client cannot hold a slot past the idle timeout",
  opts,
  async () => {
    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir, { idleTimeoutMs: 400 });
    using conn = await tlsConnect(t.port, t.caCert);
    const beat = setInterval(() => {
      conn.write(encodeFrame({ type: FrameType.HEARTBEAT })).catch(() => {});
    }, 50);
    try {
      const frames = await framesUntilClosed(conn);
      assertEquals(frames.map((f) => f.type), [FrameType.ERROR]);
      assertEquals(readError(frames[0]!).code, "timeout");
    } finally {
      clearInterval(beat);
    }
  },
);
