/** file-send's code and timeouts: wrong guesses burn the code after N; silent peers are dropped. */

import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import { readFrame } from "../lib/transfer/channel.ts";
import {
  connectToReceiver,
  FrameType,
  jsonFrame,
  parseJson,
  receiveFiles,
  sendFiles,
  TransferError,
  WrongCodeError,
} from "../lib/transfer/mod.ts";

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

Deno.test("hostile: a sender that goes silent mid-transfer is dropped after the idle timeout", async () => {
  const dst = await Deno.makeTempDir();
  try {
    const ready = Promise.withResolvers<number>();
    const done = receiveFiles({
      dir: dst,
      hostname: "127.0.0.1",
      port: 0,
      code: "velvet-ocean-trip",
      once: true,
      idleTimeoutMs: 300,
      onListening: ({ port }) => ready.resolve(port),
    });
    done.catch(() => {});
    const conn = await connectToReceiver("127.0.0.1", await ready.promise, {
      code: "velvet-ocean-trip",
    });
    await conn.channel.write(jsonFrame(FrameType.OFFER, {
      entries: [{ path: "slow.bin", type: "file", size: 10, mode: 0o644, mtimeMs: 0 }],
      totalBytes: 10,
    }));
    assertEquals(parseJson((await readFrame(conn.channel)).payload).accept, true);
    // … and then nothing.
    const error = await assertRejects(() => done, TransferError);
    assertMatch(error.message, /no data from the peer for 0\.3 s/);
    conn.close();
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});
