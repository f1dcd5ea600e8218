import { assertEquals } from "@std/assert";
import { Interrupts, SIGNAL_GRACE_MS } from "./run.ts";

Deno.test("Interrupts: one Ctrl+C delivered twice stops once; a later one forces", () => {
  const i = new Interrupts();
  assertEquals(i.next(1000), "stop");
  // deno task forwards the terminal's SIGINT: the copy arrives within a millisecond.
  assertEquals(i.next(1000.6), "ignore");
  assertEquals(i.next(1000 + SIGNAL_GRACE_MS - 1), "ignore");
  assertEquals(i.next(1000 + SIGNAL_GRACE_MS), "force");
  assertEquals(i.next(5000), "force");
});

Deno.test("Interrupts with no grace forces on the second signal", () => {
  const i = new Interrupts(0);
  assertEquals(i.next(0), "stop");
  assertEquals(i.next(0), "force");
});
