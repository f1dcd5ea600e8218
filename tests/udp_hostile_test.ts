/**
 * Hostile-input tests of the UDP server's return-address check, session tokens and per-IP
 * budgets (docs/PROTOCOL.md §5.0; issue 8 items 5–7). Real sockets on 127.0.0.1 port 0.
 *
 * On loopback a source address cannot be forged, so a "spoofed" REQUEST is simulated by the
 * attacker's own socket: what that socket receives is what a victim at the claimed address would
 * receive. Other source IPs are real: Linux routes all of 127.0.0.0/8 to loopback.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { EventLog } from "../lib/cli/event_log.ts";
import { decodeDatagram, encodeFrame, FrameType } from "../lib/wire/frame.ts";
import { encodeControl, readReject } from "../lib/wire/messages.ts";
import {
  listenRadio,
  listSongs,
  NoAnswerError,
  playSong,
  RequestRefusedError,
} from "../lib/udp/client.ts";
import { sourceKey } from "../lib/udp/address_check.ts";
import { handshake, rawSocket, startServer } from "./_udp_helpers.ts";

function clientOptions() {
  return { signal: new AbortController().signal, log: EventLog.none(), timeoutMs: 3000 };
}

/** Every datagram `sock` receives within `ms` (bounded). */
async function collect(sock: Deno.DatagramConn, ms: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  const deadline = AbortSignal.timeout(ms);
  const buf = new Uint8Array(65536);
  while (!deadline.aborted) {
    const r = await Promise.race([
      sock.receive(buf),
      new Promise<null>((resolve) => deadline.addEventListener("abort", () => resolve(null))),
    ]);
    if (!r) break;
    got.push(r[0].slice());
  }
  return got;
}

/** Waits (bounded) for a condition on server state. */
async function until(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const hex32 = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

Deno.test("hostile: forged REQUESTs get only CHALLENGEs, at most 3x their bytes, and start no stream", async () => {
  await using server = await startServer();
  using attacker = rawSocket();
  using other = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  // A cookie issued to another port of the same IP must not validate the attacker's port.
  const { cookie: othersCookie } = await handshake(other, server.address, { op: "list" });
  const bodies = [
    { op: "radio" },
    { op: "song", song: "1" },
    { op: "song", song: "no-such-song" },
    { op: "list" },
    { op: "now_playing" },
    { op: "play", song: "1" },
    { op: "radio", cookie: hex32() },
    { op: "radio", cookie: othersCookie },
  ];
  let sent = 0;
  for (const body of bodies) {
    const bytes = encodeControl(FrameType.REQUEST, body);
    sent += bytes.length;
    await attacker.send(bytes, to);
  }
  const received = await collect(attacker, 1500);
  const bytesIn = received.reduce((n, d) => n + d.length, 0);
  assertEquals(received.length, bodies.length);
  for (const d of received) assertEquals(decodeDatagram(d).type, FrameType.CHALLENGE);
  assert(bytesIn <= 3 * sent, `${bytesIn} bytes received for ${sent} sent`);
  for (const d of received) assert(d.length <= 3 * 45, `a ${d.length}-byte CHALLENGE`);
  assertEquals(server.clientCount, 0);
  assertEquals(server.stats.streamsStarted, 0);
  assertEquals(server.stats.listenersJoined, 0);
  assertEquals(server.stats.badCookies, 2);
  assert(server.stats.unvalidatedBytesOut <= 3 * server.stats.unvalidatedBytesIn);
});

Deno.test("hostile: invalid REQUEST payloads on UDP are counted and never answered", async () => {
  await using server = await startServer();
  using attacker = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  const raw = (text: string) =>
    encodeFrame({ type: FrameType.REQUEST, payload: new TextEncoder().encode(text) });
  const bad = [
    raw(""),
    raw("not json"),
    raw("[1,2]"),
    raw(`{"op":"fly"}`),
    raw(`{"op":"song","song":2}`), // a number where the name string belongs
    raw(`{"op":"list","offset":-1}`),
    raw(`{"op":"radio","cookie":"XYZ"}`),
    encodeFrame({ type: FrameType.REQUEST, payload: Uint8Array.of(0x7b, 0xff, 0x7d) }), // not UTF-8
  ];
  for (const b of bad) await attacker.send(b, to);
  await until(() => server.stats.malformed >= bad.length);
  assertEquals(await collect(attacker, 500), []);
  assertEquals(server.stats.malformed, bad.length);
  assertEquals(server.stats.challenges, 0);
});

Deno.test("hostile: a forged BYE or HEARTBEAT with the public stream id but no or a wrong token is ignored; the listener keeps playing", async () => {
  await using server = await startServer();
  using listener = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  const { answer, token, streamId } = await handshake(listener, server.address, { op: "radio" });
  assertEquals(answer.type, FrameType.ACCEPT);
  assert(token);
  // Sent from the listener's own address: what an attacker spoofing that address could send.
  const forged = [
    encodeFrame({ type: FrameType.BYE, streamId }),
    encodeControl(FrameType.BYE, { token: hex32() }, { streamId }),
    encodeControl(FrameType.BYE, { reason: "spoofed" }, { streamId }),
    encodeFrame({ type: FrameType.HEARTBEAT, streamId }),
    encodeControl(FrameType.HEARTBEAT, { token: hex32() }, { streamId }),
  ];
  for (const f of forged) await listener.send(f, to);
  await until(() => server.stats.forged >= forged.length);
  assertEquals(server.stats.forged, forged.length);
  assertEquals(server.clientCount, 1);
  // Still listening: radio DATA keeps arriving after the forged BYEs.
  const data = (await collect(listener, 1200)).filter((d) =>
    decodeDatagram(d).type === FrameType.DATA
  );
  assert(data.length >= 5, `${data.length} DATA frames after the forged BYEs`);
  // The real BYE, with the token, does end the session.
  await listener.send(encodeControl(FrameType.BYE, { token }, { streamId }), to);
  await until(() => server.clientCount === 0);
});

Deno.test("hostile: HEARTBEATs without the token do not keep a silent session alive", async () => {
  await using server = await startServer({ heartbeatTimeoutMs: 600 });
  using listener = rawSocket();
  const to = { transport: "udp" as const, ...server.address };
  const { streamId } = await handshake(listener, server.address, { op: "radio" });
  assertEquals(server.clientCount, 1);
  const forged = encodeFrame({ type: FrameType.HEARTBEAT, streamId });
  const deadline = performance.now() + 3000;
  while (server.clientCount > 0 && performance.now() < deadline) {
    await listener.send(forged, to);
    await new Promise((r) => setTimeout(r, 100));
  }
  assertEquals(server.clientCount, 0);
  assertEquals(server.stats.timedOut, 1);
  assert(server.stats.forged > 0);
});

Deno.test("hostile: admission counts per IP: many ports of 127.0.0.1 are one IP, 127.0.0.2 is another", async () => {
  await using server = await startServer({ maxClientsPerIp: 2 });
  const socks = [rawSocket(), rawSocket(), rawSocket()];
  using elsewhere = rawSocket("127.0.0.2");
  try {
    for (const s of socks.slice(0, 2)) {
      assertEquals(
        (await handshake(s, server.address, { op: "radio" })).answer.type,
        FrameType.ACCEPT,
      );
    }
    const { answer } = await handshake(socks[2]!, server.address, { op: "radio" });
    assertEquals(answer.type, FrameType.REJECT);
    assertEquals(readReject(answer).code, "busy");
    const { answer: ok } = await handshake(elsewhere, server.address, { op: "radio" });
    assertEquals(ok.type, FrameType.ACCEPT);
    assertEquals(server.clientCount, 3);
  } finally {
    for (const s of socks) s.close();
  }
});

Deno.test("hostile: the request budget counts per IP: 60 ports of one IP share 20 answers a second", async () => {
  await using server = await startServer();
  const socks = Array.from({ length: 60 }, () => rawSocket());
  try {
    const to = { transport: "udp" as const, ...server.address };
    const request = encodeControl(FrameType.REQUEST, { op: "list" });
    const start = performance.now();
    for (const s of socks) await s.send(request, to);
    await until(() => server.stats.datagrams >= socks.length);
    const windows = Math.floor(performance.now() / 1000) - Math.floor(start / 1000) + 1;
    const answers = (await Promise.all(socks.map((s) => collect(s, 600)))).flat().length;
    assert(answers <= 20 * windows, `${answers} answers in ${windows} one-second windows`);
    assertEquals(answers + server.stats.rateLimited, socks.length);
    assert(server.stats.rateLimited >= 60 - 20 * windows);
  } finally {
    for (const s of socks) s.close();
  }
});

Deno.test("hostile: a flood of unvalidated REQUESTs from many IPs holds no slot; a legit client is admitted", async () => {
  await using server = await startServer({ maxClients: 2 });
  const to = { transport: "udp" as const, ...server.address };
  const flooders = Array.from({ length: 40 }, (_, i) => rawSocket(`127.0.1.${i + 1}`));
  try {
    // In rounds that the server has read: datagrams the kernel drops would prove nothing.
    for (let round = 1; round <= 5; round++) {
      for (const f of flooders) {
        await f.send(encodeControl(FrameType.REQUEST, { op: "radio" }), to);
        await f.send(encodeControl(FrameType.REQUEST, { op: "radio", cookie: hex32() }), to);
      }
      await until(() => server.stats.datagrams >= round * flooders.length * 2);
    }
    assertEquals(server.clientCount, 0);
    const report = await listenRadio(server.address, { ...clientOptions(), maxSeconds: 1 });
    assert(report.received > 0, JSON.stringify(report));
    assertEquals(server.stats.rejected, 0);
  } finally {
    for (const f of flooders) f.close();
  }
});

Deno.test("hostile: a song name with a leading space is a name, not index 2", async () => {
  await using server = await startServer({ intervalMs: 0 });
  for (const name of [" 2", "2 ", "+2", "2.0"]) {
    await assertRejects(() => playSong(server.address, name, clientOptions()), RequestRefusedError);
  }
  assertEquals(server.stats.streamsStarted, 0);
});

Deno.test("hostile: a server that only ever CHALLENGEs gets 6 REQUESTs in all, then a clear error", async () => {
  using fake = rawSocket();
  const addr = fake.addr as Deno.NetAddr;
  let requests = 0;
  const serve = (async () => {
    const buf = new Uint8Array(2048);
    for (;;) {
      const [data, from] = await fake.receive(buf).catch(() => [null, null] as const);
      if (!data) return;
      if (decodeDatagram(data).type !== FrameType.REQUEST) continue;
      requests++;
      await fake.send(encodeControl(FrameType.CHALLENGE, { cookie: hex32() }), from!);
    }
  })();
  const err = await assertRejects(
    () => listSongs({ hostname: addr.hostname, port: addr.port }, clientOptions()),
    NoAnswerError,
  );
  assertEquals(requests, 6);
  assertEquals(
    err.message,
    `127.0.0.1:${addr.port} answered 6 requests with CHALLENGE only (is it udp-server?)`,
  );
  fake.close();
  await serve;
});

Deno.test("hostile: the client echoes the cookie and carries the token in every HEARTBEAT and BYE", async () => {
  // A hand-written server: checks what udp-client sends, byte field by field.
  using fake = rawSocket();
  const addr = fake.addr as Deno.NetAddr;
  const cookie = hex32();
  const token = hex32();
  const seen: { type: number; body: unknown }[] = [];
  const serve = (async () => {
    const buf = new Uint8Array(2048);
    for (;;) {
      const [data, from] = await fake.receive(buf).catch(() => [null, null] as const);
      if (!data) return;
      const f = decodeDatagram(data);
      const body = f.payload.length ? JSON.parse(new TextDecoder().decode(f.payload)) : undefined;
      seen.push({ type: f.type, body });
      if (f.type !== FrameType.REQUEST) continue;
      const reply = body.cookie === cookie
        ? encodeControl(FrameType.ACCEPT, {
          op: "radio",
          maxPayload: 1200,
          heartbeatMs: 500,
          token,
        }, {
          streamId: 77,
        })
        : encodeControl(FrameType.CHALLENGE, { cookie });
      await fake.send(reply, from!);
    }
  })();
  await listenRadio({ hostname: addr.hostname, port: addr.port }, {
    ...clientOptions(),
    maxSeconds: 1.2,
  });
  await until(() => seen.some((s) => s.type === FrameType.BYE));
  fake.close();
  await serve;
  const requests = seen.filter((s) => s.type === FrameType.REQUEST).map((s) => s.body);
  assertEquals(requests, [{ op: "radio" }, { op: "radio", cookie }]);
  const controls = seen.filter((s) => s.type === FrameType.HEARTBEAT || s.type === FrameType.BYE);
  assert(controls.length >= 2);
  for (const c of controls) assertEquals((c.body as { token?: string }).token, token);
});

Deno.test("sourceKey: one key per IPv4 host and per IPv6 /64, never per port", () => {
  assertEquals(sourceKey("127.0.0.1"), "127.0.0.1");
  assertEquals(sourceKey("::ffff:10.1.2.3"), "10.1.2.3");
  assertEquals(sourceKey("2001:db8:0:1::7"), "2001:db8:0:1::/64");
  assertEquals(sourceKey("2001:DB8:0:1:ffff:1:2:3"), "2001:db8:0:1::/64");
  assertEquals(sourceKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assertEquals(sourceKey("::1"), "0:0:0:0::/64");
});
