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
