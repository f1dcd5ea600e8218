import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { alignedBuffer, DIRECT_ALIGNMENT, DirectWriteError, DirectWriter } from "./direct_write.ts";

function address(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

async function withFile(
  fn: (path: string, file: Deno.FsFile, writer: DirectWriter) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "out.part");
    using file = await Deno.open(path, { write: true, createNew: true });
    const writer = await DirectWriter.open(path, await file.stat());
    if (!writer) return; // this file system has no O_DIRECT (the callers write buffered)
    using _ = writer;
    await fn(path, file, writer);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("alignedBuffer starts on a 4096-byte boundary and has the length asked for", () => {
  for (const length of [1, 4096, 5000, 4 << 20]) {
    const buffer = alignedBuffer(length);
    assertEquals(buffer.length, length);
    assertEquals(address(buffer) % BigInt(DIRECT_ALIGNMENT), 0n);
  }
});

Deno.test("DirectWriter writes the aligned head at the offset; the caller's descriptor the tail", async () => {
  await withFile(async (path, file, writer) => {
    const data = alignedBuffer(3 * 4096 + 100);
    crypto.getRandomValues(data);
    assertEquals(await writer.writeAligned(data, 8192), 3 * 4096);
    await file.seek(8192 + 3 * 4096, Deno.SeekMode.Start);
    await file.write(data.subarray(3 * 4096));
    const back = await Deno.readFile(path);
    assertEquals(back.length, 8192 + data.length);
    assertEquals(back.subarray(0, 8192), new Uint8Array(8192)); // a hole reads as zeros
    assertEquals(back.subarray(8192), data);
  });
});

Deno.test("DirectWriter leaves what it cannot write aligned to the caller (returns 0)", async () => {
  await withFile(async (path, _file, writer) => {
    const data = alignedBuffer(2 * 4096 + 1);
    assertEquals(await writer.writeAligned(data, 100), 0, "offset not aligned");
    assertEquals(await writer.writeAligned(data.subarray(1), 0), 0, "address not aligned");
    assertEquals(await writer.writeAligned(data.subarray(0, 4095), 0), 0, "under one block");
    assertEquals((await Deno.stat(path)).size, 0);
  });
});

Deno.test("DirectWriter refuses another file at the same path, and writes after close fail", async () => {
  await withFile(async (path, file, writer) => {
    const other = `${path}.other`;
    await Deno.writeFile(other, new Uint8Array(1));
    assertEquals(await DirectWriter.open(other, await file.stat()), null);
    const pending = writer.writeAligned(alignedBuffer(1 << 20), 0);
    writer.close(); // waits for the write under way before the descriptor goes
    assertEquals(await pending, 1 << 20);
    const error = await assertRejects(
      () => writer.writeAligned(alignedBuffer(4096), 0),
      DirectWriteError,
    );
    assertEquals(error.errno, 9);
    assert(error.message.includes("(os error 9)"));
  });
});
