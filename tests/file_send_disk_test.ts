/** file-send and the disk: the free-space check before accepting, a disk that fills up
 * mid-file, writes that bypass the page cache. */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { createHash } from "node:crypto";
import { readFrame } from "../lib/transfer/channel.ts";
import {
  connectToReceiver,
  encodeDataHeader,
  FrameType,
  jsonFrame,
  parseJson,
  sendFiles,
  TransferError,
  TransferRefused,
} from "../lib/transfer/mod.ts";
import { DirectWriter } from "../lib/transfer/direct_write.ts";
import { CHUNK_SIZE } from "../lib/transfer/frames.ts";
import { CODE, startReceiver, withDirs } from "./_file_send_helpers.ts";

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
      assertMatch(
        String(parseJson(error.payload).message),
        /^Cannot write big\.bin: No space left on device \(os error 28\)/,
      );
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

/** Bytes of `path` in the page cache (util-linux fincore), or null without fincore. */
function residentBytes(path: string): number | null {
  try {
    const out = new Deno.Command("fincore", {
      args: ["--bytes", "--noheadings", "--output", "RES", path],
    }).outputSync();
    return out.success ? Number(new TextDecoder().decode(out.stdout).trim()) : null;
  } catch {
    return null;
  }
}

async function directWritesWork(dir: string): Promise<boolean> {
  const probe = `${dir}/probe`;
  using file = await Deno.open(probe, { write: true, createNew: true });
  const writer = await DirectWriter.open(probe, await file.stat());
  writer?.close();
  await Deno.remove(probe);
  return writer !== null;
}

Deno.test("file-send writes the received file past the page cache (O_DIRECT): only its tail is cached", async (t) => {
  await withDirs(async (src, dst) => {
    if (!(await directWritesWork(dst)) || residentBytes("/proc/self/exe") === null) {
      t.step({ name: "no O_DIRECT on this file system, or no fincore", ignore: true, fn() {} });
      return;
    }
    const size = 3 * CHUNK_SIZE + 5000; // the last 5000 bytes are not a multiple of 4096
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) {
      crypto.getRandomValues(data.subarray(i, Math.min(size, i + 65536)));
    }
    await Deno.writeFile(join(src, "big.bin"), data);
    const receiver = await startReceiver(dst);
    await sendFiles([join(src, "big.bin")], "127.0.0.1", receiver.port, { code: CODE });
    await receiver.done;
    // Before anything reads it back: a buffered write leaves all 12 MiB in the cache.
    const cached = residentBytes(join(dst, "big.bin"))!;
    assert(cached <= 2 * 4096, `${cached} bytes of the received file are in the page cache`);
    assertEquals(await Deno.readFile(join(dst, "big.bin")), data);
  });
});
