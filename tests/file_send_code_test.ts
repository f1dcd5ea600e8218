/** file-send's code: wrong guesses are counted per connection and the code burns after N. */

import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import { receiveFiles, sendFiles, TransferError, WrongCodeError } from "../lib/transfer/mod.ts";

Deno.test("file-send burns the code after N wrong guesses; nothing is written", async () => {
  const src = await Deno.makeTempDir();
  const dst = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${src}/a.txt`, "a");
    const ready = Promise.withResolvers<number>();
    const events: string[] = [];
    const done = receiveFiles({
      dir: dst,
      hostname: "127.0.0.1",
      port: 0,
      code: "velvet-ocean-trip",
      maxFailures: 2,
      onEvent: (event) => events.push(event),
      onListening: ({ port }) => ready.resolve(port),
    });
    const port = await ready.promise;
    for (const guess of ["velvet-ocean-tree", "velvet-ocean-trial"]) {
      await assertRejects(
        () => sendFiles([`${src}/a.txt`], "127.0.0.1", port, { code: guess }),
        WrongCodeError,
      );
    }
    const burned = await assertRejects(() => done, TransferError);
    assertMatch(burned.message, /burned after 2 wrong attempts/);
    assertEquals(events, ["wrong_code", "wrong_code"]);
    assertEquals([...Deno.readDirSync(dst)], []);
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});
