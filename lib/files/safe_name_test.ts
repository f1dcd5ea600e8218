import { assert, assertEquals } from "@std/assert";
import fc from "fast-check";
import {
  MAX_FILE_NAME_BYTES,
  safeFileName,
  safeFileNameWithExtension,
  savedFileName,
} from "./safe_name.ts";

const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;

/** What every result must satisfy, whatever the input. */
function assertSafe(name: string): void {
  assert(name.length > 0, "empty name");
  assert(!/[/\\]/.test(name), `separator in ${JSON.stringify(name)}`);
  assert(name !== "." && name !== "..", `dot name ${JSON.stringify(name)}`);
  assert(!name.startsWith("."), `leading dot in ${JSON.stringify(name)}`);
  assert(!/[.\s]$/u.test(name), `trailing dot/space in ${JSON.stringify(name)}`);
  // deno-lint-ignore no-control-regex
  assert(!/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u.test(name), "control char");
  assert(!/[<>:"|?*]/.test(name), `Windows-forbidden char in ${JSON.stringify(name)}`);
  assert(!RESERVED.test(name.split(".")[0]!.trimEnd()), `device name ${JSON.stringify(name)}`);
  assert(new TextEncoder().encode(name).length <= MAX_FILE_NAME_BYTES, "too long");
}

Deno.test("safeFileName keeps an ordinary name as it is", () => {
  assertEquals(safeFileName("04-nocturne.mp3"), "04-nocturne.mp3");
  assertEquals(safeFileName("Morgen früh – Ünïcode.flac"), "Morgen früh – Ünïcode.flac");
});

Deno.test("hostile: safeFileName reduces traversal, dot files, absolute paths and devices", () => {
  const cases: [string, string][] = [
    ["../x", "x"],
    ["../../../../etc/passwd", "passwd"],
    ["/etc/cron.d/evil", "evil"],
    ["C:\\Windows\\System32\\evil.dll", "evil.dll"],
    ["..\\..\\x.mp3", "x.mp3"],
    [".bashrc", "bashrc"],
    ["...", "download"],
    ["..", "download"],
    [".", "download"],
    ["", "download"],
    ["a/", "download"],
    ["x\u001b]0;pwned\u0007.mp3", "x_]0;pwned_.mp3"],
    ["line\nbreak\r.wav", "line_break_.wav"],
    ["evil\u202eexe.mp3", "evil_exe.mp3"],
    ["CON", "_CON"],
    ["nul.mp3", "_nul.mp3"],
    ["Com1.wav", "_Com1.wav"],
    ["lpt9", "_lpt9"],
    ["console.mp3", "console.mp3"],
    ['a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"],
    ["trailing. . ", "trailing"],
  ];
  for (const [input, want] of cases) {
    assertEquals(safeFileName(input), want, JSON.stringify(input));
    assertSafe(safeFileName(input));
  }
});

Deno.test("safeFileName cuts long names to 255 UTF-8 bytes without splitting a character", () => {
  const name = safeFileName("é".repeat(300));
  assertSafe(name);
  assertEquals(name, "é".repeat(127));
  const ext = safeFileNameWithExtension("a".repeat(400), "flac");
  assertSafe(ext);
  assert(ext.endsWith(".flac"));
});

Deno.test("savedFileName: the asked name, or the title when asked by number, with the codec's extension", () => {
  assertEquals(savedFileName("beta", "../../beta.wav", "wav"), "beta.wav");
  assertEquals(savedFileName("beta.wav", "whatever", "wav"), "beta.wav");
  assertEquals(savedFileName("nocturne", "04-nocturne.mp3", "mp3"), "nocturne.mp3");
  assertEquals(savedFileName("3", "/home/u/.bashrc", "wav"), "bashrc.wav");
  assertEquals(savedFileName("2", "../x", "mp3"), "x.mp3");
  assertEquals(savedFileName("2", "evil.sh", "flac"), "evil.sh.flac");
  assertEquals(savedFileName("2", "..", "mp3"), "song-2.mp3");
  assertEquals(savedFileName("../../x", "t", "mp3"), "x.mp3");
});

Deno.test("hostile: safeFileName of any string is one safe base name (property)", () => {
  const hostile = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.string({
      unit: fc.constantFrom(".", "/", "\\", " ", "\u0000", "\u001b", "a", "C", "O", "N"),
    }),
    fc.constantFrom("CON", "nul", "COM1", "lpt1.txt", "..", ".", "/", "\\"),
  );
  fc.assert(
    fc.property(hostile, (s) => {
      const name = safeFileName(s);
      assertSafe(name);
      // Idempotent: a safe name is left alone.
      assertEquals(safeFileName(name), name);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(hostile, hostile, fc.constantFrom("mp3", "wav", "flac", "pcm_s16le"), (a, t, c) => {
      const name = savedFileName(a, t, c);
      assertSafe(name);
      assert(name.endsWith(`.${c === "pcm_s16le" ? "raw" : c}`), name);
    }),
    { numRuns: 2000 },
  );
});
