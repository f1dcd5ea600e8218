import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { escapePeerText } from "./output.ts";

Deno.test("escapePeerText leaves ordinary text alone", () => {
  assertEquals(
    escapePeerText("Song Ünïcode – 04-nocturne.mp3 has been requested!"),
    "Song Ünïcode – 04-nocturne.mp3 has been requested!",
  );
});

Deno.test("hostile: escapePeerText shows escape sequences, line breaks and bidi overrides as text", () => {
  assertEquals(escapePeerText("a\x1b[2J\x1b]0;pwned\x07b"), "a\\x1b[2J\\x1b]0;pwned\\x07b");
  assertEquals(escapePeerText("x\r\nerror: fake"), "x\\x0d\\x0aerror: fake");
  assertEquals(escapePeerText("\u009b31m\u007f\u0000"), "\\x9b31m\\x7f\\x00");
  assertEquals(escapePeerText("evil\u202egnp.exe"), "evil\\u{202e}gnp.exe");
  assertEquals(escapePeerText("\ud800"), "\\u{d800}");
});

Deno.test("hostile: escapePeerText output never holds a control character (property)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), (s) => {
      // deno-lint-ignore no-control-regex
      return !/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u.test(escapePeerText(s));
    }),
    { numRuns: 3000 },
  );
});
