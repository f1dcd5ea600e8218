import { assertEquals } from "@std/assert";
import { formatPlaybackStatus } from "./playback_status.ts";

Deno.test("formatPlaybackStatus: a song, the radio, and only the fields given", () => {
  assertEquals(
    formatPlaybackStatus({ positionMs: 5_200, durationMs: 22_000, bufferedMs: 180.4, lost: 0 }),
    "A 0:05 / 0:22  buffer 180 ms  lost 0",
  );
  assertEquals(
    formatPlaybackStatus({ positionMs: 102_000, bufferedMs: 60, lost: 3 }),
    "A 1:42 radio  buffer 60 ms  lost 3",
  );
  assertEquals(formatPlaybackStatus({ positionMs: 30_000, durationMs: 20_000 }), "A 0:20 / 0:20");
});
