/**
 * lib/web/listener_queue.ts with lazy chunks: the radio's per-listener bytes are made only when
 * the listener's writer gets to them, into one buffer the queue reuses (bench/web_stream.ts).
 */

import { assertEquals, assertStrictEquals } from "@std/assert";
import type { HttpConn } from "../lib/web/http.ts";
import { type LazyChunk, ListenerQueue } from "../lib/web/listener_queue.ts";

/** Records each write (the buffer itself and a copy of its bytes); a write completes at once. */
function recordingConn() {
  const writes: { view: Uint8Array; bytes: number[] }[] = [];
  let release: (() => void) | undefined;
  const conn: HttpConn = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    read: () => new Promise((resolve) => (release = () => resolve(null))),
    write(p) {
      writes.push({ view: p, bytes: [...p] });
      return Promise.resolve(p.length);
    },
    close: () => release?.(),
  };
  return { conn, writes };
}

/** A lazy chunk of `bytes` that counts how often it was made. */
function lazy(bytes: number[], made: { count: number }): LazyChunk {
  return {
    length: bytes.length,
    writeInto(out) {
      made.count++;
      out.set(bytes);
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("ListenerQueue makes lazy chunks only when it writes them, in order with plain bytes", async () => {
  const { conn, writes } = recordingConn();
  const q = new ListenerQueue(conn);
  const made = { count: 0 };
  q.push(new Uint8Array([1, 2, 3]));
  q.push(lazy([4, 5, 6, 7], made));
  assertEquals(made.count, 0, "nothing is made at push time");
  assertEquals(q.queuedBytes, 7, "a lazy chunk counts its length against the cap");
  await tick();
  assertEquals(made.count, 1);
  assertEquals(writes.map((w) => w.bytes), [[1, 2, 3, 4, 5, 6, 7]], "one write, in order");
  assertEquals(q.bytesSent, 7);
  q.end("stopped");
});

Deno.test("ListenerQueue reuses one buffer for the lazy chunks of successive writes", async () => {
  const { conn, writes } = recordingConn();
  const q = new ListenerQueue(conn);
  const made = { count: 0 };
  q.push(lazy([1, 2, 3, 4, 5, 6, 7, 8], made));
  await tick();
  q.push(lazy([9, 10, 11, 12, 13, 14, 15, 16], made));
  await tick();
  q.push(lazy([17, 18, 19, 20, 21, 22, 23], made));
  await tick();
  assertEquals(writes.map((w) => w.bytes), [
    [1, 2, 3, 4, 5, 6, 7, 8],
    [9, 10, 11, 12, 13, 14, 15, 16],
    [17, 18, 19, 20, 21, 22, 23],
  ]);
  // Each write completed before the next was made: the same memory serves all three.
  assertStrictEquals(writes[1]!.view.buffer, writes[0]!.view.buffer);
  assertStrictEquals(writes[2]!.view.buffer, writes[0]!.view.buffer);
  assertEquals(q.bytesSent, 23);
  q.end("stopped");
});

/**
 * A connection that takes bytes synchronously (like OpenSSL's `writeNow`): records each write;
 * `full` makes it report its buffer above the mark until `drain()`.
 */
function syncConn() {
  const writes: { view: Uint8Array; bytes: number[] }[] = [];
  let release: (() => void) | undefined;
  let drained: (() => void) | undefined;
  const state = { full: false };
  const conn: HttpConn = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    read: () => new Promise((resolve) => (release = () => resolve(null))),
    write: () => Promise.reject(new Error("write() is not used when writeNow exists")),
    writeNow(p) {
      writes.push({ view: p, bytes: [...p] });
      return !state.full;
    },
    whenDrained: () => new Promise<void>((resolve) => (drained = resolve)),
    close: () => release?.(),
  };
  const drain = () => {
    state.full = false;
    drained?.();
  };
  return { conn, writes, state, drain };
}

Deno.test("ListenerQueue over writeNow: written at push time, lazy bytes in one buffer shared by all queues", () => {
  const a = syncConn();
  const b = syncConn();
  const qa = new ListenerQueue(a.conn);
  const qb = new ListenerQueue(b.conn);
  const made = { count: 0 };
  qa.push(lazy([1, 2, 3], made));
  qb.push(lazy([4, 5, 6], made));
  // No tick: both were written synchronously, each made in the same memory.
  assertEquals(a.writes.map((w) => w.bytes), [[1, 2, 3]]);
  assertEquals(b.writes.map((w) => w.bytes), [[4, 5, 6]]);
  assertStrictEquals(b.writes[0]!.view.buffer, a.writes[0]!.view.buffer);
  assertEquals([qa.bytesSent, qb.bytesSent, qa.queuedBytes], [3, 3, 0]);
  qa.end("stopped");
  qb.end("stopped");
});

Deno.test("ListenerQueue over writeNow: past the mark, later chunks wait, then go in one write in order", async () => {
  const c = syncConn();
  const q = new ListenerQueue(c.conn, { maxBytes: 10 });
  const made = { count: 0 };
  c.state.full = true;
  q.push(new Uint8Array([1, 2]));
  q.push(lazy([3, 4, 5], made));
  q.push(new Uint8Array([6]));
  assertEquals(c.writes.length, 1, "only the first was written");
  assertEquals(made.count, 0, "a waiting lazy chunk is not made yet");
  assertEquals(q.queuedBytes, 4);
  c.drain();
  await tick();
  assertEquals(c.writes.map((w) => w.bytes), [[1, 2], [3, 4, 5, 6]]);
  assertEquals([q.bytesSent, q.queuedBytes], [6, 0]);
  // The cap still holds while the connection is full: 11 bytes waiting end the listener.
  c.state.full = true;
  q.push(new Uint8Array([7]));
  q.push(new Uint8Array(11));
  assertEquals(await q.finished, "too_slow");
});
