/**
 * The web front end's parts alone: the HTTP request reader's limits on an in-memory
 * connection, the per-IP request budget on a fake clock, and the bounded listener queue.
 */

import { assertEquals, assertRejects } from "@std/assert";
import { HttpError } from "../lib/web/errors.ts";
import { type HttpConn, readRequest } from "../lib/web/http.ts";
import { RequestBudget } from "../lib/web/request_budget.ts";
import { ListenerQueue } from "../lib/web/listener_queue.ts";

/** A connection that yields `input` in `chunk`-byte reads and records what is written. */
function memoryConn(input: Uint8Array, chunk = 7, stallWrites = false) {
  let at = 0;
  let closed = false;
  const written: Uint8Array[] = [];
  let release: (() => void) | undefined;
  const conn: HttpConn & { written: Uint8Array[]; closed: () => boolean } = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    read(p) {
      if (closed) return Promise.resolve(null);
      if (at >= input.length) {
        // Nothing more: wait until closed.
        return new Promise((resolve) => (release = () => resolve(null)));
      }
      const n = Math.min(chunk, p.length, input.length - at);
      p.set(input.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    write(p) {
      if (closed) return Promise.reject(new Error("closed"));
      written.push(p.slice());
      return stallWrites ? new Promise(() => {}) : Promise.resolve(p.length);
    },
    close() {
      closed = true;
      release?.();
    },
    written,
    closed: () => closed,
  };
  return conn;
}

const enc = new TextEncoder();

Deno.test("readRequest parses a request split over small reads, body included", async () => {
  const body = '{"song":"a"}';
  const conn = memoryConn(
    enc.encode(
      `POST /request?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    ),
  );
  const req = await readRequest(conn);
  assertEquals([req.method, req.path, req.query], ["POST", "/request", "x=1"]);
  assertEquals(req.headers.get("content-type"), "application/json");
  assertEquals(new TextDecoder().decode(req.body), body);
});

Deno.test("hostile: readRequest refuses past its limits with the right status", async () => {
  const status = async (text: string, limits = {}) => {
    const e = await assertRejects(() => readRequest(memoryConn(enc.encode(text), 4096), limits));
    return (e as HttpError).status;
  };
  assertEquals(await status(`GET / HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`), 431);
  assertEquals(
    await status(`GET / HTTP/1.1\r\nX: ${"a".repeat(100)}\r\n\r\n`, { maxHeaderBytes: 64 }),
    431,
  );
  assertEquals(await status("POST /r HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"), 413);
  assertEquals(await status("POST /r HTTP/1.1\r\n\r\n"), 411);
  assertEquals(await status("POST /r HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  assertEquals(await status("GET /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
  assertEquals(await status("GET relative HTTP/1.1\r\n\r\n"), 400);
  assertEquals(await status("GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
  assertEquals(await status("GET / HTTP/1.1\r\nHost: x\r\n", { timeoutMs: 50 }), 408);
});

Deno.test("RequestBudget: burst, then one per refill period, per address (IPv6 /64 as one)", () => {
  let now = 0;
  const b = new RequestBudget({ burst: 2, refillMs: 1000, now: () => now });
  assertEquals([b.take("10.0.0.1"), b.take("10.0.0.1")], [0, 0]);
  assertEquals(b.take("10.0.0.1"), 1000);
  assertEquals(b.take("10.0.0.2"), 0);
  now = 500;
  assertEquals(b.take("10.0.0.1"), 500);
  now = 1000;
  assertEquals(b.take("10.0.0.1"), 0);
  assertEquals([b.take("2001:db8::1"), b.take("2001:db8::2")], [0, 0]);
  assertEquals(b.take("2001:db8::3"), 1000);
});

Deno.test("ListenerQueue drops a listener whose writes stall once its byte cap fills", async () => {
  const conn = memoryConn(new Uint8Array(0), 1, true);
  const q = new ListenerQueue(conn, { maxBytes: 1000 });
  q.push(new Uint8Array(300));
  await new Promise((r) => setTimeout(r, 0)); // the writer takes it: in flight, never done
  assertEquals(q.queuedBytes, 0);
  for (let i = 0; i < 3; i++) q.push(new Uint8Array(300));
  assertEquals([q.ended, q.queuedBytes], [false, 900]);
  q.push(new Uint8Array(300)); // 1200 > 1000
  assertEquals(await q.finished, "too_slow");
  assertEquals(conn.closed(), true);
  assertEquals(q.queuedBytes, 0);
});
