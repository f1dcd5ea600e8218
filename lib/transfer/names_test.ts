import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { join } from "@std/path";
import { checkOfferedName, resolveInside, UnsafeNameError } from "./names.ts";
import { CodeFormatError, generateCode, normalizeCode } from "./code.ts";

Deno.test("checkOfferedName accepts plain relative POSIX paths, unicode included", () => {
  assertEquals(checkOfferedName("a.txt"), ["a.txt"]);
  assertEquals(checkOfferedName("photos/2024/été 🎵.jpg"), ["photos", "2024", "été 🎵.jpg"]);
  assertEquals(checkOfferedName("..hidden-but-not-dotdot"), ["..hidden-but-not-dotdot"]);
});

Deno.test("hostile names: traversal, absolute, backslash, NUL, device names, trailing dots", () => {
  const hostile = [
    "",
    "../x",
    "a/../../x",
    "a/./b",
    "/etc/x",
    "C:/x",
    "a\\..\\x",
    "a/\u0000b",
    "a/\u202eexe.txt",
    "CON",
    "con.txt",
    "dir/COM1",
    "lpt9.log",
    "a/b.",
    "a/b ",
    "a//b",
    "a/",
    "x".repeat(256),
    `${"a/".repeat(2100)}b`,
    'a"b',
    "a:b",
  ];
  for (const name of hostile) assertThrows(() => checkOfferedName(name), UnsafeNameError);
  assertThrows(() => checkOfferedName(42), UnsafeNameError);
});

Deno.test("resolveInside refuses a symbolic link on the way, creates folders otherwise", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.symlink("/tmp", join(dir, "out"));
    await assertRejects(() => resolveInside(dir, ["out", "x"], { mkdir: true }), UnsafeNameError);
    await assertRejects(() => resolveInside(dir, ["out"]), UnsafeNameError);
    assertEquals(
      await resolveInside(dir, ["a", "b", "c.txt"], { mkdir: true }),
      join(dir, "a/b/c.txt"),
    );
    assertEquals((await Deno.stat(join(dir, "a", "b"))).isDirectory, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("codes: three list words; typed forms normalize; others are refused", () => {
  const code = generateCode();
  assertEquals(code.split("-").length, 3);
  assertEquals(normalizeCode(code.toUpperCase().replaceAll("-", "  ")), code);
  assertEquals(normalizeCode("Velv-ocea-trip"), "velvet-ocean-trip");
  assertEquals(normalizeCode("act add age"), "act-add-age");
  for (
    const bad of ["velvet-ocean", "velvet-ocean-trip-extra", "velvet-ocean-zzzz", "vel-oce-tri"]
  ) {
    assertThrows(() => normalizeCode(bad), CodeFormatError);
  }
});
