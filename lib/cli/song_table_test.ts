import { assertEquals } from "@std/assert";
import { formatDuration, formatSize, formatSongTable } from "./song_table.ts";

Deno.test("formatSongTable: a header and aligned columns", () => {
  const lines = formatSongTable([
    { index: 1, title: "alpha.wav", durationMs: 8000, codec: "wav", size: 1_536_044 },
    { index: 10, title: "a-much-longer-name.mp3", durationMs: 222_400, codec: "mp3", size: 900 },
  ]);
  assertEquals(lines, [
    " #  Title                   Length  Codec     Size",
    " 1  alpha.wav                 0:08  wav    1.5 MiB",
    "10  a-much-longer-name.mp3    3:42  mp3      900 B",
  ]);
});

Deno.test("formatSongTable: titles from the server are escaped, an empty list says so", () => {
  const [, row] = formatSongTable([
    { index: 1, title: "evil\x1b[2Jname", durationMs: 0, codec: "mp3", size: 1 },
  ]);
  assertEquals(row!.includes("\x1b"), false);
  assertEquals(formatSongTable([]), ["The server has no songs."]);
});

Deno.test("formatDuration and formatSize", () => {
  assertEquals(formatDuration(59_499), "0:59");
  assertEquals(formatDuration(61_000), "1:01");
  assertEquals(formatDuration(3_725_000), "1:02:05");
  assertEquals(formatSize(2048), "2 KiB");
  assertEquals(formatSize(3 * 1024 ** 3), "3.0 GiB");
});
