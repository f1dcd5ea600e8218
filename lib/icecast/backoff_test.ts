import { assertEquals } from "@std/assert";
import { Backoff } from "./backoff.ts";

Deno.test("Backoff doubles to its cap and resets after a connection that lasted", () => {
  const b = new Backoff({ initialMs: 100, maxMs: 500, stableMs: 1000 });
  const seen = [];
  for (let i = 0; i < 5; i++) {
    b.ended(0);
    seen.push(b.delay());
  }
  assertEquals(seen, [100, 200, 400, 500, 500]);
  b.ended(999); // short connection: no reset
  assertEquals(b.delay(), 500);
  b.ended(1000); // lasted: reset
  assertEquals([b.delay(), b.delay()], [100, 200]);
});
