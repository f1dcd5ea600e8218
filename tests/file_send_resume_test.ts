/**
 * file-send resume on disk (issue 10): O(missing) reads on both sides, the journal's seal,
 * the sender's chunk-hash cache. Real TLS sockets on port 0, real files in temp folders.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { CODE, receiveArgs } from "./_file_send_helpers.ts";
import { createHash } from "node:crypto";
import {
  CHUNK_SIZE,
  IntegrityError,
  receiveFiles,
  type ReceiveOptions,
  type ReceiveSummary,
  sendFiles,
  type SendSummary,
  TransferError,
} from "../lib/transfer/mod.ts";

async function randomFile(path: string, size: number): Promise<Uint8Array> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  }
  await Deno.writeFile(path, bytes);
  return bytes;
}

/** Whether the journal at `path` has a chunk line (`C INDEX SHA256`) yet. */
function journaled(path: string): boolean {
  try {
    return /^C /m.test(Deno.readTextFileSync(path));
  } catch {
    return false;
  }
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

interface Receiver {
  port: number;
  done: Promise<ReceiveSummary>;
  stop: AbortController;
}

/** A receiver that survives lost connections; `onProgress` sees its progress. */
async function startReceiver(dst: string, options: Partial<ReceiveOptions> = {}) {
  const ready = Promise.withResolvers<number>();
  const stop = new AbortController();
  const done = receiveFiles({
    dir: dst,
    hostname: "127.0.0.1",
    port: 0,
    code: CODE,
    once: false,
    signal: stop.signal,
    ...options,
    onListening: ({ port }) => ready.resolve(port),
  });
  done.catch((error) => ready.reject(error));
  return { port: await ready.promise, done, stop } satisfies Receiver;
}

async function withDirs(
  fn: (src: string, dst: string, cache: string) => Promise<void>,
): Promise<void> {
  const dirs = await Promise.all(
    ["fs-src-", "fs-dst-", "fs-cache-"].map((prefix) => Deno.makeTempDir({ prefix })),
  );
  try {
    await fn(dirs[0]!, dirs[1]!, dirs[2]!);
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
}

/**
 * Sends `path`, stopping the sender (abort) once the receiver reports `fraction` of the file
 * present; resolves when the receiver has taken the lost connection.
 */
async function interruptedSend(
  path: string,
  port: number,
  kill: AbortController,
  cache: string,
): Promise<void> {
  await assertRejects(
    () =>
      sendFiles([path], "127.0.0.1", port, {
        code: CODE,
        signal: kill.signal,
        hashCacheDir: cache,
      }),
    TransferError,
  );
}

Deno.test("file-send resume is O(missing) on disk: after a ~50 % interruption each side reads < 60 % of the file", async () => {
  await withDirs(async (src, dst, cache) => {
    const size = 16 * CHUNK_SIZE + 12345;
    const bytes = await randomFile(join(src, "movie.bin"), size);
    const kill = new AbortController();
    const lost = Promise.withResolvers<void>();
    const receiver = await startReceiver(dst, {
      onProgress: (done, total) => {
        if (done >= total / 2) kill.abort();
      },
      onEvent: (event) => event === "connection_lost" && lost.resolve(),
    });
    await interruptedSend(join(src, "movie.bin"), receiver.port, kill, cache);
    await lost.promise;
    // What the receiver kept is journaled and sealed.
    const journal = await Deno.readTextFile(join(dst, "movie.bin.part.journal"));
    assertMatch(journal.trimEnd().split("\n").at(-1)!, /^S /);
    const again: SendSummary = await sendFiles(
      [join(src, "movie.bin")],
      "127.0.0.1",
      receiver.port,
      {
        code: CODE,
        hashCacheDir: cache,
      },
    );
    const got = await receiver.done;
    assert(again.bytes > 0 && again.bytes < 0.6 * size, `sent ${again.bytes} of ${size}`);
    assert(again.bytesRead < 0.6 * size, `sender read ${again.bytesRead} of ${size}`);
    assertEquals(again.bytesRead, again.bytes); // it read exactly what it sent
    assert(got.bytesRead < 0.6 * size, `receiver read ${got.bytesRead} of ${size}`);
    assertEquals(got.bytesRead, 0); // the sealed .part is not read back
    assertEquals(sha256(await Deno.readFile(join(dst, "movie.bin"))), sha256(bytes));
    assertEquals(got.files[0]!.root, again.files[0]!.root);
    // The file is saved: its cache is gone, and so is the journal.
    assertEquals([...Deno.readDirSync(cache)], []);
    assertEquals([...Deno.readDirSync(dst)].map((e) => e.name), ["movie.bin"]);
  });
});

Deno.test("hostile: a sealed .part written to after its seal is re-read before the rename; the changed chunk is caught", async () => {
  await withDirs(async (src, dst, cache) => {
    const size = 8 * CHUNK_SIZE;
    await randomFile(join(src, "r.bin"), size);
    const kill = new AbortController();
    const lost = Promise.withResolvers<void>();
    const receiver = await startReceiver(dst, {
      onProgress: (done, total) => {
        if (done >= total / 2) kill.abort();
      },
      onEvent: (event) => event === "connection_lost" && lost.resolve(),
    });
    try {
      await interruptedSend(join(src, "r.bin"), receiver.port, kill, cache);
      await lost.promise;
      // Another program changes one byte of chunk 1 in place (its mtime and ctime move; the
      // journal still names chunk 1's old hash).
      const part = await Deno.open(join(dst, "r.bin.part"), { read: true, write: true });
      await part.seek(CHUNK_SIZE + 77, Deno.SeekMode.Start);
      const one = new Uint8Array(1);
      await part.read(one);
      one[0]! ^= 0x01;
      await part.seek(CHUNK_SIZE + 77, Deno.SeekMode.Start);
      await part.write(one);
      part.close();
      const error = await assertRejects(
        () =>
          sendFiles([join(src, "r.bin")], "127.0.0.1", receiver.port, {
            code: CODE,
            hashCacheDir: cache,
          }),
        IntegrityError,
      );
      assertMatch(error.message, /r\.bin: chunk 1 of the partial file on disk does not match/);
      assertEquals([...Deno.readDirSync(dst)], []); // .part and journal deleted, nothing saved
    } finally {
      receiver.stop.abort();
      await receiver.done.catch(() => {});
    }
  });
});

Deno.test("file-send resume: the sender's cached hashes are not used for a file rewritten in place with its mtime set back", async () => {
  await withDirs(async (src, dst, cache) => {
    const size = 8 * CHUNK_SIZE;
    const path = join(src, "r.bin");
    const bytes = await randomFile(path, size);
    const mtime = (await Deno.stat(path)).mtime!;
    const kill = new AbortController();
    const lost = Promise.withResolvers<void>();
    const receiver = await startReceiver(dst, {
      onProgress: (done, total) => {
        if (done >= total / 2) kill.abort();
      },
      onEvent: (event) => event === "connection_lost" && lost.resolve(),
    });
    await interruptedSend(path, receiver.port, kill, cache);
    await lost.promise;
    // Chunk 2 changes in place; size and mtime are as before (the receiver's journal key
    // still matches, and so do its hashes of chunks 0 … 3 of the old content).
    const at = 2 * CHUNK_SIZE;
    bytes[at + 5]! ^= 0xff;
    using f = await Deno.open(path, { write: true });
    await f.seek(at, Deno.SeekMode.Start);
    await f.write(bytes.subarray(at, at + 16));
    await Deno.utime(path, mtime, mtime);
    const again = await sendFiles([path], "127.0.0.1", receiver.port, {
      code: CODE,
      hashCacheDir: cache,
    });
    await receiver.done;
    // The identity moved (its ctime), so the sender read every chunk the receiver has again
    // (its cache would have skipped chunks 0 … 3 and kept the old chunk 2), and sent chunk 2
    // and all after it, whose chained hashes differ now.
    assertEquals(again.bytesRead, size);
    assertEquals(again.bytes, size - 2 * CHUNK_SIZE);
    assertEquals(sha256(await Deno.readFile(join(dst, "r.bin"))), sha256(bytes));
  });
});

Deno.test("file-send resume after the receiver was killed (SIGKILL): the unsealed .part is re-read once, the file is identical", async () => {
  await withDirs(async (src, dst, cache) => {
    const size = 40 * CHUNK_SIZE;
    const bytes = await randomFile(join(src, "big.bin"), size);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../cmd/file_send.ts", import.meta.url).pathname,
        ...receiveArgs(dst, "--code", CODE, "--yes"),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let text = "";
    const reader = child.stdout.getReader();
    while (!/Listening on 127\.0\.0\.1:(\d+)/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`receive ended: ${text}`);
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const port = Number(/Listening on 127\.0\.0\.1:(\d+)/.exec(text)![1]);
    let killed = false;
    await assertRejects(
      () =>
        sendFiles([join(src, "big.bin")], "127.0.0.1", port, {
          code: CODE,
          hashCacheDir: cache,
          onProgress: (done, total) => {
            // Once the receiver journaled a fsynced batch (C lines), whenever that is on a busy
            // machine (a fixed fraction raced the receiver's 64 MiB fsync).
            if (!killed && done < total && journaled(join(dst, "big.bin.part.journal"))) {
              killed = true;
              child.kill("SIGKILL");
            }
          },
        }),
      TransferError,
    );
    await child.status;
    await child.stdout.cancel();
    const journal = await Deno.readTextFile(join(dst, "big.bin.part.journal"));
    assert(
      !journal.trimEnd().split("\n").at(-1)!.startsWith("S "),
      "a killed receiver seals nothing",
    );
    const receiver = await startReceiver(dst);
    const again = await sendFiles([join(src, "big.bin")], "127.0.0.1", receiver.port, {
      code: CODE,
      hashCacheDir: cache,
    });
    const got = await receiver.done;
    assert(again.bytes < size, `sent ${again.bytes} of ${size} again`);
    assertEquals(got.bytesRead, size); // unsealed: the whole .part was checked once
    assertEquals(sha256(await Deno.readFile(join(dst, "big.bin"))), sha256(bytes));
    assertEquals(got.files[0]!.sha256, sha256(bytes)); // from the re-read
  });
});

Deno.test("file-send: a file written to while it is sent ends with ERROR naming it; nothing is saved in its place", async () => {
  await withDirs(async (src, dst, cache) => {
    const path = join(src, "growing.bin");
    await randomFile(path, 8 * CHUNK_SIZE);
    const receiver = await startReceiver(dst);
    let touched = false;
    const error = await assertRejects(
      () =>
        sendFiles([path], "127.0.0.1", receiver.port, {
          code: CODE,
          hashCacheDir: cache,
          onProgress: (done, total) => {
            if (touched || done < total / 2) return;
            touched = true;
            // Another program rewrites a byte mid-send: its mtime and ctime move.
            const f = Deno.openSync(path, { write: true });
            f.writeSync(new Uint8Array([1]));
            f.close();
          },
        }),
      TransferError,
    );
    assert(touched, "the sender never got half way");
    assertMatch(error.message, /growing\.bin changed while it was being sent; send it again/);
    receiver.stop.abort();
    await receiver.done.catch(() => {});
    // No growing.bin in place: at most its .part and journal, which a later send resumes.
    const names = [...Deno.readDirSync(dst)].map((e) => e.name).sort();
    assert(!names.includes("growing.bin"), `saved anyway: ${names}`);
    for (const n of names) assertMatch(n, /^growing\.bin\.part(\.journal)?$/);
  });
});
