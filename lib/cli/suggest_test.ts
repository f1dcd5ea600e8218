import { assertEquals } from "@std/assert";
import { closestName, didYouMean, editDistance } from "./suggest.ts";

Deno.test("editDistance: insert, delete, substitute and swap each cost one", () => {
  assertEquals(editDistance("nocturne", "nocturne"), 0);
  assertEquals(editDistance("nocturn", "nocturne"), 1);
  assertEquals(editDistance("noctunre", "nocturne"), 1);
  assertEquals(editDistance("nocturme", "nocturne"), 1);
  assertEquals(editDistance("", "abc"), 3);
  assertEquals(editDistance("kitten", "sitting"), 3);
});

Deno.test("closestName: a typo finds its name, another word does not", () => {
  const songs = ["01-morning-arpeggio", "04-nocturne", "nocturne", "waltz"];
  assertEquals(closestName("nocturen", songs), "nocturne");
  assertEquals(closestName("WALZ", songs), "waltz");
  assertEquals(closestName("jazz", songs), undefined);
  assertEquals(closestName("", songs), undefined);
  assertEquals(closestName("buf", ["buffer", "bitrate"]), "buffer");
  assertEquals(closestName("sec", ["seconds"]), "seconds");
});

Deno.test("didYouMean: formats the suggestion or nothing", () => {
  assertEquals(didYouMean("radoi", ["radio", "list"]), ` (did you mean "radio"?)`);
  assertEquals(didYouMean("xyz", ["radio", "list"]), "");
  assertEquals(didYouMean("bufer", ["buffer"], (n) => `--${n}`), " (did you mean --buffer?)");
});
