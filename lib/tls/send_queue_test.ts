import { assertEquals, assertRejects } from "@std/assert";
import { SendQueue } from "./send_queue.ts";

/** A peer that never reads: every write stays pending. */
const stalled = { write: () => new Promise<number>(() => {}) };

Deno.test("SendQueue: a push waiting for room ends when its signal aborts", async () => {
  const queue = new SendQueue(stalled, { maxBytes: 1024 });
  assertEquals(queue.offer(new Uint8Array(1000)), true);
  const controller = new AbortController();
  const waiting = queue.push(new Uint8Array(100), controller.signal);
  setTimeout(() => controller.abort(new Error("stop")), 20);
  await assertRejects(() => waiting, Error, "stop");
  assertEquals(queue.queuedBytes, 1000, "nothing was queued by the aborted push");
  queue.close();
});

Deno.test("SendQueue: waitForRoom counts the block being prepared against the bound", async () => {
  const queue = new SendQueue(stalled, { maxBytes: 1024 });
  assertEquals(await queue.waitForRoom(2048), true, "an empty queue takes any one block");
  queue.offer(new Uint8Array(600));
  let room: boolean | undefined;
  void queue.waitForRoom(600).then((r) => (room = r));
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(room, undefined, "600 + 600 > 1024: still waiting");
  queue.close();
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(room, false, "a closed queue answers false");
});

/** A writer with the fast path: records hand-ons; `full` makes tryWrite report a full buffer. */
function fastWriter() {
  const handed: number[] = [];
  const written: number[] = [];
  let drain: (() => void) | undefined;
  const w = {
    full: false,
    handed,
    written,
    write(p: Uint8Array) {
      written.push(p.length);
      return Promise.resolve(p.length);
    },
    tryWrite(p: Uint8Array) {
      handed.push(p.length);
      return !w.full;
    },
    whenDrained: () => new Promise<void>((resolve) => (drain = resolve)),
    drain: () => drain?.(),
  };
  return w;
}

Deno.test("SendQueue hands small frames to a tryWrite writer at once, in order", () => {
  const w = fastWriter();
  const queue = new SendQueue(w, { maxBytes: 1024, writeSlice: 100 });
  assertEquals(queue.offer(new Uint8Array(10)), true);
  assertEquals(queue.offer(new Uint8Array(20)), true);
  // Synchronously: no promise, no pump, nothing left queued.
  assertEquals(w.handed, [10, 20]);
  assertEquals([queue.queuedBytes, queue.bytesWritten, queue.busy], [0, 30, false]);
  assertEquals(w.written, [], "write() is not used for them");
  queue.close();
});

Deno.test("SendQueue waits for the writer to drain once tryWrite says its buffer is full", async () => {
  const w = fastWriter();
  const queue = new SendQueue(w, { maxBytes: 1024, writeSlice: 100 });
  w.full = true;
  queue.offer(new Uint8Array(10)); // taken, but the writer is now above its mark
  queue.offer(new Uint8Array(20));
  queue.offer(new Uint8Array(30));
  assertEquals(w.handed, [10], "nothing more until the writer drains");
  assertEquals([queue.queuedBytes, queue.busy], [50, true]);
  w.full = false;
  w.drain();
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(w.handed, [10, 20, 30]);
  assertEquals([queue.queuedBytes, queue.busy, queue.bytesWritten], [0, false, 60]);
  // A chunk larger than one slice goes through write(), sliced.
  queue.offer(new Uint8Array(250));
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(w.written, [100, 100, 50]);
  assertEquals(queue.bytesWritten, 310);
  queue.close();
});
