/** file-send and the disk: the free-space check before accepting, a disk that fills up mid-file. */

import { assertEquals, assertMatch, assertRejects } from "@std/assert";
import { createHash } from "node:crypto";
import { readFrame } from "../lib/transfer/channel.ts";
import {
  connectToReceiver,
  encodeDataHeader,
  FrameType,
  jsonFrame,
  parseJson,
  TransferError,
  TransferRefused,
} from "../lib/transfer/mod.ts";
import { CODE, startReceiver } from "./_file_send_helpers.ts";

Deno.test("file-send refuses an offer larger than the free space of DIR", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const receiver = await startReceiver(dir);
    const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
    const size = 2 ** 50; // 1 PiB
    await conn.channel.write(jsonFrame(FrameType.OFFER, {
      entries: [{ path: "huge.img", type: "file", size, mode: 0o644, mtimeMs: 0 }],
      totalBytes: size,
    }));
    const answer = parseJson((await readFrame(conn.channel)).payload);
    assertEquals(answer.accept, false);
    assertMatch(String(answer.reason), /not enough free space/);
    conn.close();
    await assertRejects(() => receiver.done, TransferRefused);
    assertEquals([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// A 2 MiB tmpfs needs mount rights (root with CAP_SYS_ADMIN); elsewhere the test is skipped.
const canMount = Deno.uid() === 0 &&
  new Deno.Command("mount", { args: ["--version"], stdout: "null", stderr: "null" })
    .outputSync().success;

Deno.test({
  name: "file-send: a disk that fills up mid-file gives a clean error to both, nothing in place",
  ignore: !canMount,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const mount = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir],
    })
      .outputSync();
    if (!mount.success) return; // no mount rights in this container: nothing to prove here
    try {
      const receiver = await startReceiver(dir);
      const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
      const size = 1536 * 1024;
      await conn.channel.write(jsonFrame(FrameType.OFFER, {
        entries: [{ path: "big.bin", type: "file", size, mode: 0o644, mtimeMs: 0 }],
        totalBytes: size,
      }));
      assertEquals(parseJson((await readFrame(conn.channel)).payload).accept, true);
      // Someone else fills the disk after the check.
      await Deno.writeFile(`${dir}/filler`, new Uint8Array(1024 * 1024));
      const chunk = crypto.getRandomValues(new Uint8Array(65536));
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += chunk.length) data.set(chunk, i);
      const sha256 = new Uint8Array(createHash("sha256").update(data).digest());
      await conn.channel.write(encodeDataHeader({ file: 0, chunk: 0, sha256 }, size));
      await conn.channel.write(data);
      const error = await readFrame(conn.channel);
      assertEquals(error.type, FrameType.ERROR);
      assertMatch(String(parseJson(error.payload).message), /^Cannot write big\.bin: /);
      conn.close();
      const failure = await assertRejects(() => receiver.done, TransferError);
      assertMatch(failure.message, /^Cannot write big\.bin: /);
      assertEquals(
        [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n === "big.bin"),
        [],
      );
    } finally {
      new Deno.Command("umount", { args: [dir] }).outputSync();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
