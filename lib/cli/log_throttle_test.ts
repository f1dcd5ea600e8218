import { assertEquals } from "@std/assert";
import { LogThrottle } from "./log_throttle.ts";

Deno.test("LogThrottle logs the first N of each event, then every Mth, with the count", () => {
  const t = new LogThrottle(3, 10);
  const logged = Array.from({ length: 25 }, () => t.admit("drop")).filter((n) => n > 0);
  assertEquals(logged, [1, 2, 3, 10, 20]);
  assertEquals(t.admit("other"), 1, "each event name has its own count");
});
