/**
 * Relay overlay (docs/PROTOCOL.md §9) on loopback: a tls-server with --relay-fanout and
 * relaying listeners (in-process RelayNodes, and the real tls-client for one case).
 */
import { assert, assertEquals } from "@std/assert";
import { decodeDatagram, FrameType, STREAM_MAX_PAYLOAD, writeHeader } from "../lib/wire/frame.ts";
import { RelayNode, type RelayNodeOptions } from "../lib/relay/node.ts";
import { encodeRelay } from "../lib/relay/messages.ts";
import { ServerRefusedError } from "../lib/tls/client.ts";
import { makeSongs, startTestServer, type TestServer } from "./_tls_helpers.ts";

const WINDOW_MS = 200;
// Generous for a loaded machine (2 shared cores): a late heartbeat must not look like a crash.
const SILENCE_MS = 1000;

/** A listener that keeps every DATA frame it plays, by sequence number. */
interface Listener {
  node: RelayNode;
  data: Map<number, Uint8Array>;
  /** Resolves once a DATA frame with sequence ≥ seq was played. */
  reach(seq: number, timeoutMs?: number): Promise<void>;
}

async function join(t: TestServer, extra: Partial<RelayNodeOptions> = {}): Promise<Listener> {
  const data = new Map<number, Uint8Array>();
  const waiters: { seq: number; resolve: () => void }[] = [];
  let top = -1;
  const node = await RelayNode.start({ hostname: "localhost", port: t.port }, {
    connect: { caCerts: [t.caCert] },
    listenHost: "127.0.0.1",
    silenceMs: SILENCE_MS,
    stallMs: 1500,
    ...extra,
    onRadio: (e) => {
      if (e.type !== "data") return;
      data.set(e.sequence, e.payload.slice());
      top = Math.max(top, e.sequence);
      for (const w of [...waiters]) {
        if (top >= w.seq) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    },
  });
  await node.joined;
  return {
    node,
    data,
    reach(seq, timeoutMs = 10_000) {
      if (top >= seq) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`node ${node.node}: no seq ${seq}`)),
          timeoutMs,
        );
        waiters.push({ seq, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
  };
}

function highest(l: Listener): number {
  return Math.max(...l.data.keys());
}

/** Every sequence both listeners played carries the same bytes. */
function assertSameBytes(a: Listener, b: Listener): number {
  let common = 0;
  for (const [seq, bytes] of a.data) {
    const other = b.data.get(seq);
    if (!other) continue;
    assertEquals(other, bytes, `seq ${seq}`);
    common++;
  }
  return common;
}

/** Sequences missing between the first and last DATA a listener played. */
function gaps(l: Listener, from: number, to: number): number[] {
  const out = [];
  for (let s = from; s <= to; s++) if (!l.data.has(s)) out.push(s);
  return out;
}

async function chainServer(fanout: number) {
  const songs = await makeSongs({ "a.wav": [30, 8000, 1], "b.wav": [30, 8000, 1] });
  return await startTestServer(songs, { relay: { fanout, windowMs: WINDOW_MS } });
}

Deno.test("relay: a chain of 5 listeners plays byte-identical verified frames, each served by the previous", async () => {
  await using t = await chainServer(1);
  const nodes: Listener[] = [];
  for (let i = 0; i < 5; i++) nodes.push(await join(t));
  try {
    // Placement: #1 under the server, each next under the previous.
    assertEquals(nodes.map((n) => n.node.parent), [
      0,
      ...nodes.slice(0, 4).map((n) => n.node.node!),
    ]);
    const start = Math.max(...nodes.map(highest));
    await Promise.all(nodes.map((n) => n.reach(start + 20)));
    for (const n of nodes.slice(1)) assert(assertSameBytes(nodes[0]!, n) >= 20);
    for (const n of nodes) {
      assertEquals(n.node.stats.forged, 0);
      assertEquals(gaps(n, Math.min(...n.data.keys()), highest(n)), []);
    }
    // The server streams to one listener only; the others get it from their parent.
    assertEquals(nodes[0]!.node.stats.bytesFromRelays, 0);
    for (const n of nodes.slice(1)) assert(n.node.stats.bytesFromRelays > 0);
    assertEquals(t.server.relay!.overlay.format().length, 6);
  } finally {
    for (const n of nodes) await n.node[Symbol.asyncDispose]();
  }
});

Deno.test("relay: a middle node of the chain leaves gracefully: its child moves to its parent, no gap downstream", async () => {
  await using t = await chainServer(1);
  const nodes: Listener[] = [];
  for (let i = 0; i < 5; i++) nodes.push(await join(t));
  try {
    await Promise.all(nodes.map((n) => n.reach(highest(nodes[0]!) + 5)));
    const leaver = nodes[2]!;
    const before = highest(nodes[4]!);
    await leaver.node.leave();
    const rest = nodes.filter((n) => n !== leaver);
    await Promise.all(rest.map((n) => n.reach(before + 25)));
    assertEquals(nodes[3]!.node.parent, nodes[1]!.node.node);
    for (const n of [nodes[3]!, nodes[4]!]) {
      assertEquals(gaps(n, before - 5, highest(n)), [], `node ${n.node.node}`);
      assertEquals(n.node.stats.lostFrames, 0);
      assertEquals(n.node.stats.forged, 0);
    }
    const moved = nodes[3]!.node.stats.recoveries;
    assertEquals(moved.map((r) => [r.reason, r.from, r.to, r.lostFrames]), [[
      "moved",
      leaver.node.node,
      nodes[1]!.node.node,
      0,
    ]]);
    assert(assertSameBytes(nodes[0]!, nodes[4]!) >= 25);
    assertEquals(t.server.relay!.overlay.size, 4);
  } finally {
    for (const n of nodes) await n.node[Symbol.asyncDispose]();
  }
});

/**
 * A chain of 5; once all play, `fail` breaks node 2 (of 0–4). Resolves when nodes 3 and 4 have
 * played 30 more frames, after checking that node 3's statistics count exactly the frames it
 * missed. The caller disposes `nodes`.
 */
async function breakChainMiddle(
  t: TestServer,
  nodes: Listener[],
  fail: (node: Listener) => void,
): Promise<Listener> {
  for (let i = 0; i < 5; i++) nodes.push(await join(t));
  await Promise.all(nodes.map((n) => n.reach(highest(nodes[0]!) + 5)));
  const broken = nodes[2]!;
  fail(broken);
  const at = highest(nodes[4]!);
  await Promise.all([nodes[3]!, nodes[4]!].map((n) => n.reach(at + 30)));
  // What was lost is exactly what the statistics say.
  const n3 = nodes[3]!;
  assertEquals(
    gaps(n3, Math.min(...n3.data.keys()), highest(n3)).length,
    n3.node.stats.lostFrames,
  );
  return broken;
}

Deno.test("relay: a middle node that hangs (silent, sockets open): its child switches to the backup within the silence timeout, gap reported", async () => {
  await using t = await chainServer(1);
  const nodes: Listener[] = [];
  try {
    const hung = await breakChainMiddle(t, nodes, (n) => n.node.freeze());
    const r = nodes[3]!.node.stats.recoveries;
    assert(r.length >= 1);
    assertEquals([r[0]!.reason, r[0]!.from, r[0]!.to], [
      "silent",
      hung.node.node,
      nodes[1]!.node.node,
    ]);
    assert(r[0]!.waitMs !== undefined, "the gap is measured");
    assertEquals(r[0]!.lostFrames, nodes[3]!.node.stats.lostFrames);
    // The server evicted the hung node on the report and re-parented its child.
    await t.waitFor((e) => e.event === "relay_report" && e.fields.reason === "silent");
    assert(!t.server.relay!.overlay.has(hung.node.node!));
    assertSameBytes(nodes[0]!, nodes[4]!);
  } finally {
    for (const n of nodes) await n.node[Symbol.asyncDispose]();
  }
});

Deno.test("relay: a middle node killed (sockets closed): downstream resumes from the backup, the gap is reported", async () => {
  await using t = await chainServer(1);
  const nodes: Listener[] = [];
  try {
    const killed = await breakChainMiddle(t, nodes, (n) => n.node.close());
    const n3 = nodes[3]!;
    assertEquals(n3.node.parent, nodes[1]!.node.node);
    assertEquals(n3.node.stats.recoveries[0]!.from, killed.node.node);
    assertEquals(nodes[4]!.node.parent, n3.node.node);
    assertSameBytes(nodes[0]!, nodes[4]!);
  } finally {
    for (const n of nodes) await n.node[Symbol.asyncDispose]();
  }
});

/** Flips a payload bit of every DATA frame and fixes the CRC (a careful attacker). */
function flipDataBit(bytes: Uint8Array): Uint8Array {
  if (bytes[3] !== FrameType.DATA) return bytes;
  const f = decodeDatagram(bytes, { maxPayload: STREAM_MAX_PAYLOAD });
  const out = bytes.slice();
  out[32 + (f.payload.length >> 1)]! ^= 0x10;
  writeHeader(out, f, out.subarray(32));
  return out;
}

Deno.test("hostile: a tampering relay is detected, nothing it altered is played or forwarded, its child is re-attached", async () => {
  await using t = await chainServer(1);
  const a = await join(t);
  const b = await join(t, { tamper: flipDataBit });
  const c = await join(t);
  const d = await join(t);
  const nodes = [a, b, c, d];
  try {
    await Promise.all([a, c, d].map((n) => n.reach(highest(a) + 20)));
    await t.waitFor((e) => e.event === "relay_report" && e.fields.reason === "forged");
    // Let the re-attached nodes play on for a while (on a busy machine the recovery can take
    // most of the first wait), so the comparison below has frames from after it.
    await Promise.all([c, d].map((n) => n.reach(highest(a) + 20)));
    assert(c.node.stats.forged >= 1);
    assertEquals(c.node.parent, a.node.node);
    assertEquals(d.node.stats.forged, 0, "the forged frame was not forwarded");
    assertEquals(c.node.stats.recoveries[0]?.reason, "forged");
    assert(!t.server.relay!.overlay.has(b.node.node!));
    // Everything c and d played is what a (served by the server) played.
    assert(assertSameBytes(a, c) >= 15);
    assert(assertSameBytes(a, d) >= 15);
  } finally {
    for (const n of nodes) await n.node[Symbol.asyncDispose]();
  }
});

const CLIENT = new URL("../cmd/tls_client.ts", import.meta.url).pathname;

function spawnRelay(t: TestServer, extra: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      CLIENT,
      "radio",
      "--relay",
      "--relay-host",
      "127.0.0.1",
      "--server",
      `localhost:${t.port}`,
      "--ca",
      t.certs.caCert,
      "--audio-backend",
      "null",
      ...extra,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** Ends a spawned relay (SIGKILL if it still runs) and the in-process listeners. */
async function stopRelay(proc: Deno.ChildProcess, listeners: (Listener | undefined)[]) {
  try {
    proc.kill("SIGKILL");
  } catch { /* exited */ }
  await proc.status;
  await proc.stdout.cancel().catch(() => {});
  await proc.stderr.cancel().catch(() => {});
  for (const l of listeners) await l?.node[Symbol.asyncDispose]();
}

Deno.test("relay command: tls-client radio --relay in the middle of a chain relays byte-identical frames and leaves gracefully at --seconds (no gap below it)", async () => {
  await using t = await chainServer(1);
  const a = await join(t);
  const proc = spawnRelay(t, ["--seconds", "6", "-o", await Deno.makeTempFile({ suffix: ".wav" })]);
  let c: Listener | undefined;
  try {
    await t.waitFor((e) => e.event === "relay_join" && e.fields.session !== a.node.node, 20_000);
    c = await join(t);
    const middle = t.server.relay!.overlay.placement(c.node.node!)!.parent;
    assert(middle !== a.node.node && middle !== 0, "c is served by the spawned relay");
    await c.reach(highest(c) + 10);
    const out = await proc.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    assert(
      /Relay: \d+ frames verified, 0 lost, 0 forged, [1-9]\d* bytes forwarded/.test(stderr),
      stderr,
    );
    await c.reach(highest(c) + 10);
    assertEquals(c.node.parent, a.node.node);
    assertEquals(c.node.stats.recoveries.map((r) => [r.reason, r.lostFrames]), [["moved", 0]]);
    assertEquals(gaps(c, Math.min(...c.data.keys()), highest(c)), []);
    assert(assertSameBytes(a, c) >= 20);
  } finally {
    await stopRelay(proc, [a, c]);
  }
});

Deno.test("relay command: a tls-client radio --relay killed with SIGKILL in the middle: the node below resumes from its backup, gap reported", async () => {
  await using t = await chainServer(1);
  const a = await join(t);
  const proc = spawnRelay(t, ["-o", await Deno.makeTempFile({ suffix: ".wav" })]);
  let c: Listener | undefined;
  try {
    await t.waitFor((e) => e.event === "relay_join" && e.fields.session !== a.node.node, 20_000);
    c = await join(t);
    const middle = t.server.relay!.overlay.placement(c.node.node!)!.parent;
    await c.reach(highest(c) + 10);
    proc.kill("SIGKILL");
    await proc.status;
    await c.reach(highest(a) + 10);
    assertEquals(c.node.parent, a.node.node);
    const r = c.node.stats.recoveries;
    // The node below sees its link close, and the server sees the TLS link close: whichever
    // comes first moves it (a report, or the server's new assign).
    assertEquals(r.map((x) => [x.from, x.to]), [[middle, a.node.node]]);
    assert(r[0]!.reason === "silent" || r[0]!.reason === "moved", r[0]!.reason);
    assertEquals(gaps(c, Math.min(...c.data.keys()), highest(c)).length, c.node.stats.lostFrames);
    assert(assertSameBytes(a, c) >= 10);
  } finally {
    await stopRelay(proc, [a, c]);
  }
});

Deno.test("relay: a tree of 10 with fanout 3: depth 2, byte-identical frames everywhere; a killed inner node's children are re-attached and resume", async () => {
  await using t = await chainServer(3);
  const nodes: Listener[] = [];
  for (let i = 0; i < 10; i++) nodes.push(await join(t));
  try {
    const overlay = t.server.relay!.overlay;
    assertEquals(overlay.children(0).length, 3);
    assertEquals(Math.max(...nodes.map((n) => overlay.depth(n.node.node!))), 2);
    await Promise.all(nodes.map((n) => n.reach(highest(nodes[0]!) + 10)));
    for (const n of nodes.slice(1)) assert(assertSameBytes(nodes[0]!, n) >= 10);
    // Kill an inner node (one of the server's children, serving three).
    const inner = nodes[1]!;
    const orphans = nodes.filter((n) =>
      overlay.placement(n.node.node!)!.parent === inner.node.node
    );
    assertEquals(orphans.length, 3);
    inner.node.close();
    const at = highest(nodes[0]!);
    const rest = nodes.filter((n) => n !== inner);
    await Promise.all(rest.map((n) => n.reach(at + 20)));
    for (const o of orphans) {
      assert(o.node.parent !== inner.node.node);
      assertEquals(o.node.stats.recoveries.length >= 1, true);
      assertEquals(o.node.stats.forged, 0);
    }
    for (const n of rest) {
      assertEquals(gaps(n, Math.min(...n.data.keys()), highest(n)).length, n.node.stats.lostFrames);
      assertSameBytes(nodes[0]!, n);
    }
    assertEquals(overlay.size, 9);
    for (const id of overlay.ids()) assert(overlay.children(id).length <= 3);
  } finally {
    for (const n of nodes) await n.node[Symbol.asyncDispose]();
  }
});

Deno.test("hostile: relay refusals and bad peers — a server without --relay-fanout refuses join; a child with an unknown token is closed", async () => {
  const songs = await makeSongs({ "a.wav": [10, 8000, 1] });
  {
    await using t = await startTestServer(songs);
    const node = await RelayNode.start({ hostname: "localhost", port: t.port }, {
      connect: { caCerts: [t.caCert] },
      listenHost: "127.0.0.1",
    });
    try {
      const error = await node.joined.then(() => undefined, (e) => e);
      assert(error instanceof ServerRefusedError, String(error));
      assertEquals(error.code, "bad_request");
      assertEquals(error.message, "this server does not relay (no --relay-fanout)");
    } finally {
      await node[Symbol.asyncDispose]();
    }
  }
  await using t = await chainServer(1);
  const a = await join(t);
  try {
    // A stranger (no token the server gave out) gets nothing and is closed.
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: a.node.addr.port });
    const hello = encodeRelay({ msg: "hello", token: "0".repeat(32) });
    await conn.write(hello);
    const buf = new Uint8Array(4096);
    let got = 0;
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      got += n;
    }
    assertEquals(got, 0);
    assertEquals(a.node.stats.children, 0);
  } finally {
    await a.node[Symbol.asyncDispose]();
  }
});
