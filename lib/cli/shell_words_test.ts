import { assertEquals, assertThrows } from "@std/assert";
import { QuoteError, splitWords } from "./shell_words.ts";

Deno.test("splitWords keeps quoted blanks in one word", () => {
  assertEquals(splitWords('play "my song"'), ["play", "my song"]);
  assertEquals(splitWords("get 'my song' /tmp/x y"), ["get", "my song", "/tmp/x", "y"]);
  assertEquals(splitWords("play my\\ song"), ["play", "my song"]);
  assertEquals(splitWords('play "say \\"hi\\" \\\\ \\n"'), ["play", 'say "hi" \\ \\n']);
  assertEquals(splitWords('  list   ""  '), ["list", ""]);
  assertEquals(splitWords("a'b c'd"), ["ab cd"]);
  assertEquals(splitWords("   "), []);
});

Deno.test("splitWords rejects an unclosed quote", () => {
  assertThrows(() => splitWords('play "my song'), QuoteError, 'unclosed " quote');
  assertThrows(() => splitWords("play 'x"), QuoteError, "unclosed ' quote");
});
