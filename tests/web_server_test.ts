/**
 * Issue #14: `/stream`, `/status.json` and `/request` of tls-server's web front end, against a
 * real server on port 0 — ffprobe decodes 10 s of the stream, the status agrees with
 * `tls-client queue`/`now`, and hostile HTTP clients (slow reader, huge header, big body,
 * request flood, names outside the catalog) are refused or dropped.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { makeSongs, testCerts } from "./_tls_helpers.ts";
import { startWebServer, type WebTestServer } from "./_web_helpers.ts";
import type { WebStatus } from "../lib/web/status.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLIENT = fromFileUrl(new URL("../cmd/tls_client.ts", import.meta.url));

const SONGS: Record<string, [number, number, number]> = {
  "a-first.wav": [30, 8000, 1],
  "b-second.wav": [30, 8000, 1],
  "c-third.wav": [30, 8000, 1],
  "d-fourth.wav": [30, 8000, 1],
};

async function status(s: WebTestServer): Promise<WebStatus> {
  const r = await fetch(`${s.origin}/status.json`, { client: s.client });
  assertEquals(r.status, 200);
  return await r.json() as WebStatus;
}

async function request(s: WebTestServer, body: string, contentType = "application/json") {
  const r = await fetch(`${s.origin}/request`, {
    method: "POST",
    body,
    headers: { "Content-Type": contentType },
    client: s.client,
  });
  return { status: r.status, json: await r.json() as Record<string, unknown> };
}

/** Sends raw bytes over TLS and returns the whole answer (the server closes after it). */
async function raw(s: WebTestServer, bytes: Uint8Array): Promise<string> {
  const conn = await Deno.connectTls({
    hostname: "localhost",
    port: s.web.addr.port,
    caCerts: [s.tls.caCert],
  });
  try {
    await conn.write(bytes).catch(() => {});
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

Deno.test(
  "web /stream: Icecast-style headers, ffprobe decodes 10 s of Ogg/Opus",
  opts,
  async () => {
    await using s = await startWebServer(await makeSongs(SONGS));
    const dir = await Deno.makeTempDir({ prefix: "soundsock-web-" });
    const file = join(dir, "stream.ogg");
    const headers = join(dir, "headers.txt");
    // curl reads the live stream for 12 s (10 s of audio and a margin), then stops (exit 28).
    const curl = await new Deno.Command("curl", {
      args: [
        "-sS",
        "--cacert",
        s.tls.certs.caCert,
        "--max-time",
        "12",
        "-D",
        headers,
        "-o",
        file,
        `${s.origin}/stream`,
      ],
    }).output();
    assertEquals(curl.code, 28, new TextDecoder().decode(curl.stderr));
    const head = await Deno.readTextFile(headers);
    assertMatch(head, /^HTTP\/1\.1 200 OK\r\n/);
    assertStringIncludes(head, "Content-Type: audio/ogg\r\n");
    assertStringIncludes(head, "icy-name: soundsock radio\r\n");
    assertStringIncludes(head, "Cache-Control: no-cache");
    const probe = await new Deno.Command("ffprobe", {
      args: [
        "-v",
        "error",
        "-count_frames",
        "-show_entries",
        "stream=codec_name,sample_rate,channels,nb_read_frames",
        "-of",
        "json",
        file,
      ],
    }).output();
    const err = new TextDecoder().decode(probe.stderr);
    assertEquals([probe.code, err], [0, ""]);
    const stream = JSON.parse(new TextDecoder().decode(probe.stdout)).streams[0];
    assertEquals([stream.codec_name, stream.sample_rate, stream.channels], ["opus", "48000", 2]);
    // 20 ms Opus frames: 500 of them are 10 s.
    assert(Number(stream.nb_read_frames) >= 500, `decoded ${stream.nb_read_frames} frames`);
    const decode = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-i", file, "-f", "null", "-"],
    }).output();
    assertEquals([decode.code, new TextDecoder().decode(decode.stderr)], [0, ""]);
    await s.waitFor((e) => e.event === "web_stream_end" && e.fields.reason === "closed");
  },
);

Deno.test("web /status.json agrees with tls-client queue and now", opts, async () => {
  await using s = await startWebServer(await makeSongs(SONGS));
  let st = await status(s);
  while (!st.nowPlaying) st = await status(s);
  const others = st.songs.filter((x) => x.title !== st.nowPlaying!.title).map((x) => x.title);
  for (const title of others.slice(0, 2)) {
    const r = await request(s, JSON.stringify({ song: title }));
    assertEquals(r.json.message, `Song ${title} has been requested!`);
  }
  const client = async (cmd: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        CLIENT,
        cmd,
        "--server",
        `localhost:${s.tls.port}`,
        "--ca",
        s.tls.certs.caCert,
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  };
  const queue = await client("queue");
  const now = await client("now");
  st = await status(s);
  assertEquals(st.queue.map((q) => q.title), others.slice(0, 2));
  const lines = queue.trim().split("\n");
  assertEquals(lines.length, 2, queue);
  st.queue.forEach((q, i) => assertStringIncludes(lines[i]!, q.title));
  assertStringIncludes(now, st.nowPlaying!.title);
  assertEquals(st.listeners, { total: 0, tls: 0, web: 0 });
  assertEquals(st.codec, "opus");
});

Deno.test(
  "web /request: the three PLAY answers; names outside the catalog do not exist",
  opts,
  async () => {
    await using s = await startWebServer(await makeSongs(SONGS), { budget: { burst: 100 } });
    let st = await status(s);
    while (!st.nowPlaying) st = await status(s);
    const pick = st.songs.find((x) => x.title !== st.nowPlaying!.title)!.title;
    assertEquals(
      (await request(s, JSON.stringify({ song: pick }))).json.message,
      `Song ${pick} has been requested!`,
    );
    assertEquals(
      (await request(s, JSON.stringify({ song: pick }))).json.message,
      "Song has already been requested",
    );
    for (const name of ["../../etc/passwd", "/etc/passwd", "nope.wav", ".hidden", "0"]) {
      const r = await request(s, JSON.stringify({ song: name }));
      assertEquals([r.status, r.json.result, r.json.message], [
        200,
        "not_found",
        "Song does not exist",
      ], name);
    }
  },
);

Deno.test(
  "hostile web clients: a huge header, a big body, bad JSON, a wrong type, a flood",
  opts,
  async () => {
    await using s = await startWebServer(await makeSongs(SONGS), { budget: { burst: 3 } });
    const enc = new TextEncoder();
    const huge = await raw(
      s,
      enc.encode(`GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(20_000)}\r\n\r\n`),
    );
    assertMatch(huge, /^HTTP\/1\.1 431 /);
    const noEnd = await raw(s, enc.encode(`GET / HTTP/1.1\r\n${"X-A: b\r\n".repeat(2000)}`));
    assertMatch(noEnd, /^HTTP\/1\.1 431 /);
    const big = await raw(
      s,
      enc.encode(
        `POST /request HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`,
      ),
    );
    assertMatch(big, /^HTTP\/1\.1 413 /);
    const chunked = await raw(
      s,
      enc.encode(`POST /request HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n`),
    );
    assertMatch(chunked, /^HTTP\/1\.1 501 /);
    const garbage = await raw(s, enc.encode("SK\x01\x00garbage\r\n\r\n"));
    assertMatch(garbage, /^HTTP\/1\.1 400 /);
    assertEquals((await request(s, "{not json")).status, 400);
    assertEquals((await request(s, JSON.stringify({ song: 5 }))).status, 400);
    assertEquals((await request(s, JSON.stringify({ song: "x" }), "text/plain")).status, 415);
    const notFound = await fetch(`${s.origin}/nothing`, { client: s.client });
    assertEquals(notFound.status, 404);
    await notFound.body?.cancel();
    const wrong = await fetch(`${s.origin}/status.json`, { method: "DELETE", client: s.client });
    assertEquals(wrong.status, 405);
    await wrong.body?.cancel();
    // The budget: 3 requests, then 429 with Retry-After.
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(
        (await request(s, JSON.stringify({ song: "nope" }))).status,
      );
    }
    assertEquals(answers, [200, 200, 200, 429, 429]);
    // The server still serves.
    assertEquals((await status(s)).songs.length, 4);
  },
);

Deno.test("hostile web clients: a header that never ends in time gets 408", opts, async () => {
  await using s = await startWebServer(await makeSongs(SONGS), { limits: { timeoutMs: 300 } });
  const answer = await raw(s, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
  assertMatch(answer, /^(HTTP\/1\.1 408 |)/);
  await s.waitFor((e) => e.event === "web_refused" && e.fields.status === 408);
});

Deno.test(
  "hostile web clients: past the per-IP connection limit the server answers 503",
  opts,
  async () => {
    await using s = await startWebServer(await makeSongs(SONGS), { maxConnectionsPerIp: 2 });
    const held = await Promise.all(
      [0, 1].map(() =>
        Deno.connectTls({ hostname: "localhost", port: s.web.addr.port, caCerts: [s.tls.caCert] })
      ),
    );
    // Each completes its handshake (the server counts a connection once it is TLS).
    for (const c of held) await c.handshake();
    while (s.web.stats.open < 2) await new Promise((r) => setTimeout(r, 20));
    const answer = await raw(s, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    assertMatch(answer, /^HTTP\/1\.1 503 /);
    for (const c of held) c.close();
  },
);

Deno.test(
  "hostile web clients: a /stream reader that stops reading is dropped, not buffered",
  opts,
  async () => {
    // The fastest Opus station (510 kbit/s of full-band noise, ~64 kB/s): the kernel's socket
    // buffers (loopback: MBs) fill first, then the 128 KiB queue, and the listener is dropped.
    const noise = await makeSongs({ "a.wav": [30, 48000, 2], "b.wav": [30, 48000, 2] });
    await using s = await startWebServer(noise, { streamQueueBytes: 128 * 1024 }, {
      bitrate: 510_000,
    });
    // A Python client with a 4 KiB receive buffer that sends GET /stream and never reads.
    const script = `
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", int(sys.argv[1])))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"GET /stream HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n")
print("sent", flush=True)
time.sleep(120)
`;
    const child = new Deno.Command("python3", {
      args: ["-c", script, String(s.web.addr.port), s.tls.certs.caCert],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const end = await s.waitFor(
        (e) => e.event === "web_stream_end" && e.fields.reason === "too_slow",
        90_000,
      );
      assert(Number(end.fields.bytes) > 0);
      assertEquals(s.web.stats.slowDropped, 1);
      assertEquals(s.web.streamListeners, 0);
    } finally {
      child.kill();
      await child.output().catch(() => {});
    }
  },
);

Deno.test(
  "tls-server --web without --web-port: one port carries soundsock frames and HTTPS",
  opts,
  async () => {
    const songs = await makeSongs(SONGS);
    const certs = await testCerts();
    const server = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fromFileUrl(new URL("../cmd/tls_server.ts", import.meta.url)),
        "--port",
        "0",
        "--web",
        "--ready-json",
        "--songs",
        songs,
        "--cert",
        certs.serverCert,
        "--key",
        certs.serverKey,
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    try {
      const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`tls-server exited: ${text}`);
        text += value;
      }
      const ready = JSON.parse(text.split("\n")[0]!);
      assertEquals(ready.webPort, ready.port);
      const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.caCert)] });
      try {
        const r = await fetch(`https://localhost:${ready.port}/status.json`, { client });
        assertEquals(r.status, 200);
        const st = await r.json() as WebStatus;
        assertEquals(st.songs.length, 4);
        const page = await fetch(`https://localhost:${ready.port}/`, { client });
        assertStringIncludes(await page.text(), "<title>soundsock radio</title>");
      } finally {
        client.close();
      }
      const list = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          CLIENT,
          "list",
          "--server",
          `localhost:${ready.port}`,
          "--ca",
          certs.caCert,
        ],
        env: { NO_COLOR: "1" },
        stdin: "null",
      }).output();
      assertEquals(list.code, 0, new TextDecoder().decode(list.stderr));
      assertStringIncludes(new TextDecoder().decode(list.stdout), "a-first.wav");
      await reader.cancel();
    } finally {
      server.kill("SIGINT");
      await server.status;
      await server.stderr.cancel().catch(() => {});
    }
  },
);

Deno.test("tls-server --web-port without --web is a usage error", opts, async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      fromFileUrl(new URL("../cmd/tls_server.ts", import.meta.url)),
      "--web-port",
      "9",
    ],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 2, stderr);
  assertMatch(stderr, /^error: --web-port needs --web\n/);
});

Deno.test(
  "hostile (shared port): a connection that sends nothing after its handshake is closed",
  opts,
  async () => {
    await using s = await startWebServer(await makeSongs(SONGS), {}, { handshakeTimeoutMs: 300 }, {
      shared: true,
    });
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: s.tls.port,
      caCerts: [s.tls.caCert],
    });
    await conn.handshake();
    // The server waits for the first bytes (SK or HTTP) at most the handshake timeout, then closes.
    const n = await conn.read(new Uint8Array(64)).catch(() => null);
    assertEquals(n, null);
    conn.close();
    // The port still serves both.
    assertEquals((await status(s)).songs.length, 4);
    using c = await s.tls.connect();
    assertEquals((await c.list()).length, 4);
  },
);
