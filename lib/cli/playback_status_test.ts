import { assertEquals } from "@std/assert";
import { formatPlaybackStatus, formatTransferStatus } from "./playback_status.ts";

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

Deno.test("formatTransferStatus: bytes, share, rate and time left", () => {
  assertEquals(
    formatTransferStatus(1024 ** 2, 4 * 1024 ** 2, 1000),
    "1.0 MiB / 4.0 MiB  25 %  1.0 MiB/s  ETA 0:03",
  );
  assertEquals(formatTransferStatus(2048, undefined, 0), "2 KiB  0.0 MiB/s");
  assertEquals(formatTransferStatus(4096, 4096, 10), "4 KiB / 4 KiB  100 %  0.4 MiB/s");
});
