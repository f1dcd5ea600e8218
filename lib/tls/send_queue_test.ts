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
