import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { createCertificates } from "../certs.ts";
import { HandshakeError } from "../server_conn.ts";
import { NativeTlsConn } from "./conn.ts";
import { loadNativeTls, NativeTlsContext } from "./ffi.ts";

async function setup() {
  const loaded = await loadNativeTls();
  // CI installs libssl-dev; a machine without it must say so here, not pass silently.
  if (!loaded.ok) throw new Error(`native TLS not available: ${loaded.reason}`);
  const dir = await Deno.makeTempDir();
  const certs = await createCertificates(join(dir, "certs"));
  const context = NativeTlsContext.create(
    loaded,
    await Deno.readTextFile(certs.serverCert),
    await Deno.readTextFile(certs.serverKey),
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const caCert = await Deno.readTextFile(certs.caCert);
  const accept = async (timeoutMs = 5000) => {
    const tcp = await listener.accept();
    const pending = NativeTlsConn.accept(tcp, { context, handshakeTimeoutMs: timeoutMs });
    if (!pending) throw new Error("the accepted socket's descriptor was not found");
    return await pending;
  };
  /** Arguments for `openssl s_client` to this server, verifying it, plus `extra`. */
  const sClientArgs = (...extra: string[]) => [
    "s_client",
    "-connect",
    `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    "-servername",
    "localhost",
    "-CAfile",
    certs.caCert,
    "-verify_return_error",
    ...extra,
  ];
  return {
    listener,
    caCert,
    accept,
    sClientArgs,
    [Symbol.asyncDispose]: async () => {
      listener.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("native TLS: 1 MiB to the client and 300 KB back byte-exact, then close_notify ends the client's read", async () => {
  await using s = await setup();
  const client = await Deno.connectTls({
    hostname: "localhost",
    port: (s.listener.addr as Deno.NetAddr).port,
    caCerts: [s.caCert],
  });
  const server = await s.accept();
  assertEquals(server.protocol, "TLSv1.3");
  assert(server.ownRecords, "TLS 1.3 records are sealed by our record layer");
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < 16; i++) big.set(data, i * 65536);
  // Server → client: a large write (queued past the kernel's buffer, written with backpressure).
  const received = (async () => {
    const out = new Uint8Array(big.length);
    let at = 0;
    while (at < out.length) {
      const n = await client.read(out.subarray(at));
      if (n === null) break;
      at += n;
    }
    return out.subarray(0, at);
  })();
  await server.write(big);
  assertEquals(await received, big);
  // Client → server: 300 KB, many times the read limit (16 KiB), so the socket stops being
  // read while it waits and resumes as the reader takes it. (Deno's write may take part of
  // a large buffer: loop.)
  const upload = big.subarray(0, 300_000);
  const sent = (async () => {
    for (let at = 0; at < upload.length;) at += await client.write(upload.subarray(at));
  })();
  const got = new Uint8Array(upload.length);
  let at = 0;
  while (at < got.length) {
    const n = await server.read(got.subarray(at, at + 5000));
    if (n === null) throw new Error(`the upload ended after ${at} bytes`);
    at += n;
  }
  await sent;
  assertEquals(got, upload);
  server.close();
  // A clean TLS end (close_notify), not a reset: the client's read returns null.
  assertEquals(await client.read(new Uint8Array(16)), null);
  client.close();
});

Deno.test("native TLS: a peer that never speaks is closed at the handshake timeout", async () => {
  await using s = await setup();
  const silent = await Deno.connect({
    hostname: "127.0.0.1",
    port: (s.listener.addr as Deno.NetAddr).port,
  });
  const started = performance.now();
  await assertRejects(() => s.accept(300), HandshakeError, "no TLS handshake within 300 ms");
  assert(performance.now() - started < 3000);
  // The server closed its socket: the silent peer sees the end.
  assertEquals(await silent.read(new Uint8Array(16)), null);
  silent.close();
});

Deno.test("native TLS: garbage instead of a client hello fails the handshake", async () => {
  await using s = await setup();
  const bad = await Deno.connect({
    hostname: "127.0.0.1",
    port: (s.listener.addr as Deno.NetAddr).port,
  });
  await bad.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await assertRejects(() => s.accept(), HandshakeError, "TLS handshake failed");
  bad.close();
});

Deno.test("native TLS: tryWrite reports backpressure from a peer that stops reading", async () => {
  await using s = await setup();
  const client = await Deno.connectTls({
    hostname: "localhost",
    port: (s.listener.addr as Deno.NetAddr).port,
    caCerts: [s.caCert],
  });
  const server = await s.accept();
  const frame = new Uint8Array(16 * 1024);
  let accepted = 0;
  // The client reads nothing: the kernel buffers fill, then the connection's queue.
  for (let i = 0; i < 2000 && server.tryWrite(frame); i++) {
    accepted++;
    await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
  }
  assert(accepted < 2000, "tryWrite said stop before 32 MiB");
  assert(server.bufferedBytes > 0);
  client.close();
  server.close(0);
});

/** Random bytes (getRandomValues fills at most 64 KiB per call). */
function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(out.subarray(at, at + 65536));
  return out;
}

Deno.test("native TLS: radio rounds to three listeners, one of which stops reading for a while, reach all three byte-exact and in order", async () => {
  await using s = await setup();
  const port = (s.listener.addr as Deno.NetAddr).port;
  const clients: Deno.TlsConn[] = [];
  const servers: NativeTlsConn[] = [];
  for (let i = 0; i < 3; i++) {
    clients.push(await Deno.connectTls({ hostname: "localhost", port, caCerts: [s.caCert] }));
    servers.push(await s.accept());
  }
  // Rounds of distinct bytes (a reordering or a lost piece shows), small and large records,
  // 16 MB in all: far more than the stalled listener's socket buffers hold, so its sends in
  // a round come back short or EAGAIN and the rest waits in its queue behind them.
  const rounds = Array.from(
    { length: 700 },
    (_, i) => random(i % 3 === 0 ? 1000 : 34_000),
  );
  const total = rounds.reduce((sum, r) => sum + r.length, 0);
  const expected = new Uint8Array(total);
  rounds.reduce((at, r) => (expected.set(r, at), at + r.length), 0);
  const readAll = async (client: Deno.TlsConn) => {
    const out = new Uint8Array(total);
    let at = 0;
    while (at < total) {
      const n = await client.read(out.subarray(at));
      if (n === null) break;
      at += n;
    }
    return out.subarray(0, at);
  };
  let releaseStalled!: () => void;
  const stalledMayRead = new Promise<void>((resolve) => releaseStalled = resolve);
  const reads = [
    stalledMayRead.then(() => readAll(clients[0]!)),
    readAll(clients[1]!),
    readAll(clients[2]!),
  ];
  for (const round of rounds) {
    // One task: the same buffer to every listener, one sst_write_many call.
    for (const server of servers) server.tryWrite(round);
    await new Promise((r) => setTimeout(r, 0));
  }
  assert(servers[0]!.bufferedBytes > 0, "the stalled listener's queue holds bytes");
  assertEquals(await reads[1], expected);
  assertEquals(await reads[2], expected);
  releaseStalled();
  assertEquals(await reads[0], expected);
  for (const server of servers) server.close(0);
  for (const client of clients) client.close();
});

for (
  const suite of [
    { name: "TLS 1.3 AES-128-GCM", args: ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"] },
    {
      name: "TLS 1.3 AES-256-GCM (SHA-384)",
      args: ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
    },
    {
      name: "TLS 1.3 ChaCha20-Poly1305",
      args: ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
    },
    { name: "TLS 1.2 (OpenSSL's own records)", args: ["-tls1_2"] },
  ]
) {
  Deno.test(`native TLS: openssl s_client on ${suite.name} reads 200 KB byte-exact, then the end`, async () => {
    await using s = await setup();
    // -quiet: only the application data on stdout; it exits when the server closes.
    const client = new Deno.Command("openssl", {
      args: s.sClientArgs("-quiet", ...suite.args),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    const server = await s.accept();
    assertEquals(server.protocol, suite.args[0] === "-tls1_3" ? "TLSv1.3" : "TLSv1.2");
    assertEquals(server.ownRecords, suite.args[0] === "-tls1_3");
    const data = random(200_000);
    // Writes of every size a record can take: one byte, a radio frame, more than a record.
    for (const [from, to] of [[0, 1], [1, 1001], [1001, 40_000], [40_000, 200_000]]) {
      await server.write(data.subarray(from, to));
    }
    server.close();
    const out = await client;
    const said = new TextDecoder().decode(out.stderr);
    assertEquals(out.stdout.length, data.length, said);
    assertEquals(out.stdout, data);
    // A record that failed to decrypt or authenticate would be reported here.
    assert(!/error|alert/i.test(said), said);
  });
}

Deno.test("native TLS: a client's KeyUpdate asking for ours is answered with a KeyUpdate, and data after it still decrypts", async () => {
  await using s = await setup();
  // -msg prints every handshake message s_client receives ("<<< ... KeyUpdate").
  const client = new Deno.Command("openssl", {
    args: s.sClientArgs("-msg", "-tls1_3"),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = client.stdout.getReader();
  let text = "";
  const waitFor = async (needle: string) => {
    const until = Date.now() + 10_000;
    while (!text.includes(needle)) {
      if (Date.now() > until) throw new Error(`no "${needle}" from s_client:\n${text}`);
      const r = await reader.read();
      if (r.done) throw new Error(`s_client ended before "${needle}":\n${text}`);
      text += new TextDecoder().decode(r.value);
    }
  };
  const stdin = client.stdin.getWriter();
  try {
    const server = await s.accept();
    assert(server.ownRecords);
    await server.write(new TextEncoder().encode("before-update\n"));
    await waitFor("before-update");
    // s_client's "K": a KeyUpdate that asks the server to update its keys too (§4.6.3).
    await stdin.write(new TextEncoder().encode("K\n"));
    // The request reaches the server with the next read; the answer goes out at once.
    const received = text.length;
    await waitFor("<<< TLS 1.3, Handshake [length 0005], KeyUpdate");
    assert(text.indexOf("KeyUpdate", received) >= 0);
    // Under the next key: a record sealed with the old one would fail s_client's decryption.
    for (let i = 0; i < 3; i++) await server.write(new TextEncoder().encode(`after-update-${i}\n`));
    await waitFor("after-update-2");
    // And a second update, to check the chain of secrets.
    await stdin.write(new TextEncoder().encode("K\n"));
    await new Promise((r) => setTimeout(r, 200));
    await server.write(new TextEncoder().encode("after-second-update\n"));
    await waitFor("after-second-update");
    server.close();
  } finally {
    await stdin.close().catch(() => {});
    try {
      client.kill();
    } catch {
      // already gone
    }
    reader.releaseLock();
    await client.stdout.cancel().catch(() => {});
    const said = await new Response(client.stderr).text();
    await client.status;
    assert(!/bad record mac|decrypt/i.test(said + text), said);
  }
});

Deno.test("native TLS: a tampered record from the client ends the connection with OpenSSL's reason, and OpenSSL's alert is not sent under our key", async () => {
  await using s = await setup();
  // A relay that flips the last byte (in the AEAD tag) of the client's next chunk when told to,
  // and counts what the server sends after that.
  const relayListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let tamper = false;
  let afterTamper = -1;
  const relay = (async () => {
    const inbound = await relayListener.accept();
    const outbound = await Deno.connect({
      hostname: "127.0.0.1",
      port: (s.listener.addr as Deno.NetAddr).port,
    });
    const pipe = async (from: Deno.Conn, to: Deno.Conn, toServer: boolean) => {
      const buf = new Uint8Array(65536);
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          if (toServer && tamper) {
            buf[n - 1] = buf[n - 1]! ^ 0x01;
            tamper = false;
            afterTamper = 0;
          } else if (!toServer && afterTamper >= 0) {
            afterTamper += n;
          }
          await to.write(buf.subarray(0, n));
        }
      } catch {
        // the other side went away
      }
      try {
        to.closeWrite();
      } catch {
        // already closed
      }
    };
    await Promise.all([pipe(inbound, outbound, true), pipe(outbound, inbound, false)]);
    inbound.close();
    outbound.close();
  })();
  const client = await Deno.connectTls({
    hostname: "localhost",
    port: (relayListener.addr as Deno.NetAddr).port,
    caCerts: [s.caCert],
  });
  try {
    const server = await s.accept();
    assert(server.ownRecords);
    // One round trip under the traffic keys first.
    await client.write(new TextEncoder().encode("ping"));
    const got = new Uint8Array(4);
    assertEquals(await server.read(got), 4);
    await server.write(new TextEncoder().encode("pong"));
    assertEquals(await client.read(new Uint8Array(4)), 4);
    tamper = true;
    await client.write(new TextEncoder().encode("tampered"));
    await assertRejects(() => server.read(new Uint8Array(16)), Error, "bad record mac");
    await new Promise((r) => setTimeout(r, 200));
    assertEquals(afterTamper, 0, "the server sent something after the tampered record");
  } finally {
    client.close();
    relayListener.close();
    await relay;
  }
});
