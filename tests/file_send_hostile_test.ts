/**
 * file-send against hostile peers and hostile surroundings (review of issue 10): guesses that
 * hang up, links planted in DIR, colliding names, a receiver that stalls, a tampered resume.
 * Real TLS sockets on port 0, real files in temp folders.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { createHash } from "node:crypto";
import tls from "node:tls";
import { DenoChannel, NodeChannel, readFrame } from "../lib/transfer/channel.ts";
import { createEphemeralCert } from "../lib/transfer/cert.ts";
import { receiverHandshake } from "../lib/transfer/handshake.ts";
import {
  CHUNK_SIZE,
  connectToReceiver,
  encodeFrame,
  FrameType,
  IntegrityError,
  jsonFrame,
  MAX_OFFER_ENTRIES,
  parseJson,
  passwordScalar,
  receiveFiles,
  sendFiles,
  Spake2,
  TransferError,
  TransferRefused,
} from "../lib/transfer/mod.ts";
import { CODE, startReceiver, unsealedJournal, withDirs } from "./_file_send_helpers.ts";

/** Settles with "pending" if `promise` has not settled within `ms` (bounds a test that would hang). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  try {
    return await Promise.race([promise, pending]);
  } finally {
    clearTimeout(timer);
  }
}

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(e.isDirectory ? `${rel}/` : rel);
    if (e.isDirectory) out.push(...await listTree(join(dir, e.name), rel));
  }
  return out.sort();
}

/** One guess as a hostile sender: sends a share, reads B's confirmation, hangs up. */
async function guessAndHangUp(port: number, guess: string): Promise<void> {
  const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
  await new Promise((r) => socket.once("secureConnect", r));
  const channel = new NodeChannel(socket);
  const spake = new Spake2("A", passwordScalar(guess));
  await channel.write(encodeFrame(FrameType.PAKE, spake.share));
  const reply = await readFrame(channel);
  assertEquals(reply.type, FrameType.PAKE);
  channel.close();
}

Deno.test("hostile: a guesser that hangs up after the receiver's confirmation is counted; the code burns", async () => {
  await withDirs(async (_src, dst) => {
    const controller = new AbortController();
    const receiver = await startReceiver(dst, {
      once: false,
      maxFailures: 2,
      signal: controller.signal,
    });
    try {
      await guessAndHangUp(receiver.port, "velvet-ocean-tree");
      await guessAndHangUp(receiver.port, "velvet-ocean-trial");
      const outcome = await within(receiver.done.catch((e: Error) => e), 5000);
      if (!(outcome instanceof TransferError)) {
        throw new Error(`the receiver is still listening: ${JSON.stringify(outcome)}`);
      }
      assertMatch(outcome.message, /burned after 2 wrong attempts/);
      assertEquals(receiver.events, ["wrong_code", "wrong_code"]);
      assertEquals(await listTree(dst), []);
    } finally {
      controller.abort();
      await receiver.done.catch(() => {});
    }
  });
});

Deno.test("hostile: a link planted at NAME.part or NAME.part.journal in DIR is not written through", async () => {
  for (const planted of ["x.bin.part", "x.bin.part.journal"]) {
    await withDirs(async (src, dst) => {
      const outside = await Deno.makeTempDir({ prefix: "fs-outside-" });
      try {
        await Deno.writeTextFile(join(outside, "victim"), "precious");
        await Deno.symlink(join(outside, "victim"), join(dst, planted));
        await Deno.writeTextFile(join(src, "x.bin"), "payload from the sender");
        const receiver = await startReceiver(dst);
        await assertRejects(
          () => sendFiles([join(src, "x.bin")], "127.0.0.1", receiver.port, { code: CODE }),
          TransferRefused,
        );
        await assertRejects(() => receiver.done, TransferRefused);
        assertEquals(await Deno.readTextFile(join(outside, "victim")), "precious", planted);
        assertEquals(await listTree(dst), [planted]);
      } finally {
        await Deno.remove(outside, { recursive: true });
      }
    });
  }
});

Deno.test("hostile: offers whose names land on each other, or too many or too long, are refused whole", async () => {
  const file = (path: string) => ({ path, type: "file", size: 1, mode: 0o644, mtimeMs: 0 });
  const dir = (path: string) => ({ path, type: "dir", size: 0, mode: 0o755, mtimeMs: 0 });
  const cases: [string, unknown[]][] = [
    ["the same name twice", [file("a.txt"), file("a.txt")]],
    ["names equal once NFC-normalized", [file("caf\u00e9.txt"), file("cafe\u0301.txt")]],
    ["names differing only in case", [file("Notes.txt"), file("notes.txt")]],
    ["a file that is also a folder", [file("a"), file("a/b")]],
    ["a folder entry over a file", [dir("a"), file("A")]],
    ["a file named like another's .part", [file("x"), file("x.part")]],
    ["a file named like another's journal", [file("x.part.journal"), file("x")]],
    ["a file name too long for its journal", [file("n".repeat(250))]],
    ["a path too long with DIR in front", [dir(Array(16).fill("p".repeat(254)).join("/"))]],
    ["a size that is not a number", [{ ...file("s"), size: "12" }]],
    ["a negative size", [{ ...file("s"), size: -1 }]],
    ["a size past 2^53", [{ ...file("s"), size: 2 ** 60 }]],
    [
      "too many entries",
      Array.from({ length: MAX_OFFER_ENTRIES + 1 }, (_, i) => dir(`d${i}`)),
    ],
  ];
  for (const [what, entries] of cases) {
    await withDirs(async (_src, dst) => {
      const receiver = await startReceiver(dst);
      const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
      await conn.channel.write(jsonFrame(FrameType.OFFER, { entries, totalBytes: 2 }));
      const answer = parseJson((await readFrame(conn.channel)).payload);
      assertEquals(answer.accept, false, what);
      conn.close();
      await assertRejects(() => receiver.done, TransferRefused, undefined, what);
      assertEquals(await listTree(dst), [], what);
    });
  }
});

Deno.test("hostile: a receiver that accepts and then stops reading is given up on (sender idle timeout)", async () => {
  await withDirs(async (src, _dst) => {
    const size = 64 << 20; // more than the socket buffers hold
    using f = await Deno.open(join(src, "big.bin"), { write: true, create: true });
    await f.truncate(size);
    const { key, cert, fingerprint } = await createEphemeralCert();
    using listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, key, cert });
    const stalled = Promise.withResolvers<void>();
    const receiver = (async () => {
      const conn = await listener.accept();
      const channel = new DenoChannel(conn);
      await receiverHandshake(channel, CODE, fingerprint);
      await readFrame(channel); // the offer
      await channel.write(jsonFrame(FrameType.ANSWER, {
        accept: true,
        files: [{ action: "send", have: [] }],
      }));
      // … and then it reads nothing more, until the test ends.
      await stalled.promise;
      channel.close();
    })();
    const send = sendFiles([join(src, "big.bin")], "127.0.0.1", listener.addr.port, {
      code: CODE,
      idleTimeoutMs: 500,
    });
    const outcome = await within(send.catch((e: Error) => e), 15_000);
    stalled.resolve();
    await receiver.catch(() => {});
    if (!(outcome instanceof TransferError)) {
      throw new Error(`the sender is still waiting: ${JSON.stringify(outcome)}`);
    }
    assertMatch(outcome.message, /no progress from the peer for 0\.5 s/);
  });
});

Deno.test("hostile: a resumed .part altered on disk since its journal was written is caught before the rename", async () => {
  await withDirs(async (src, dst) => {
    const size = CHUNK_SIZE + 1000;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    await Deno.writeFile(join(src, "r.bin"), bytes);
    const mtimeMs = (await Deno.stat(join(src, "r.bin"))).mtime!.getTime();
    // What an earlier session left: chunk 0 verified in the journal, but on disk it differs
    // (a crash before the data reached the disk, or anything else that touched it).
    const chunk0 = bytes.slice(0, CHUNK_SIZE);
    const journal = await unsealedJournal(size, mtimeMs, chunk0);
    chunk0[12345]! ^= 0xff;
    await Deno.writeFile(join(dst, "r.bin.part"), chunk0);
    await Deno.writeTextFile(join(dst, "r.bin.part.journal"), journal);
    const receiver = await startReceiver(dst);
    await assertRejects(
      () => sendFiles([join(src, "r.bin")], "127.0.0.1", receiver.port, { code: CODE }),
      IntegrityError,
    );
    const error = await assertRejects(() => receiver.done, IntegrityError);
    assertMatch(error.message, /r\.bin: chunk 0 of the partial file on disk does not match/);
    assertEquals(await listTree(dst), []);
  });
});

Deno.test("file-send after a resume reports the whole-file SHA-256 of the file on disk (WAIT frames while it re-reads)", async () => {
  await withDirs(async (src, dst) => {
    const size = 2 * CHUNK_SIZE + 7;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    await Deno.writeFile(join(src, "r.bin"), bytes);
    const mtimeMs = (await Deno.stat(join(src, "r.bin"))).mtime!.getTime();
    const chunk0 = bytes.slice(0, CHUNK_SIZE);
    await Deno.writeFile(join(dst, "r.bin.part"), chunk0);
    await Deno.writeTextFile(
      join(dst, "r.bin.part.journal"),
      await unsealedJournal(size, mtimeMs, chunk0),
    );
    // waitEveryMs 0: a WAIT frame after every chunk re-read (receiver) or hashed without
    // sending (sender), which the other side must take.
    const receiver = await startReceiver(dst, { waitEveryMs: 0 });
    const sent = await sendFiles([join(src, "r.bin")], "127.0.0.1", receiver.port, {
      code: CODE,
      waitEveryMs: 0,
    });
    const summary = await receiver.done;
    const want = createHash("sha256").update(bytes).digest("hex");
    assertEquals(sent.bytes, size - CHUNK_SIZE); // only the missing chunks crossed
    assertEquals(summary.files[0]!.sha256, want);
    assertEquals(sent.files[0]!.sha256, want);
    assertEquals(await listTree(dst), ["r.bin"]);
  });
});

Deno.test("file-send errors are one line: a busy port, a device given as a file", async () => {
  await withDirs(async (_src, dst) => {
    using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const error = await assertRejects(
      () => receiveFiles({ dir: dst, hostname: "127.0.0.1", port: busy.addr.port, code: CODE }),
      TransferError,
    );
    assertMatch(error.message, new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${busy.addr.port}: `));
    const device = await assertRejects(
      () => sendFiles(["/dev/null"], "127.0.0.1", busy.addr.port, { code: CODE }),
      Error,
    );
    assertEquals(device.message, "Cannot send /dev/null: not a regular file or folder");
    assertEquals(await listTree(dst), []);
  });
});

/** A fake receiver: after the handshake (or instead of it) it runs `script`. */
async function fakeReceiver(
  script: (channel: DenoChannel, fingerprint: Uint8Array) => Promise<void>,
) {
  const { key, cert, fingerprint } = await createEphemeralCert();
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, key, cert });
  const done = (async () => {
    const conn = await listener.accept();
    const channel = new DenoChannel(conn);
    try {
      await script(channel, fingerprint);
    } finally {
      channel.close();
      listener.close();
    }
  })();
  return { port: listener.addr.port, done };
}

Deno.test("hostile: a receiver's messages and answers cannot inject terminal escapes or crash the sender", async () => {
  await withDirs(async (src, _dst) => {
    await Deno.writeTextFile(join(src, "a.txt"), "a");
    // Before the code check anyone can send ERROR: escapes and length are neutralized.
    const early = await fakeReceiver(async (channel) => {
      await readFrame(channel);
      await channel.write(jsonFrame(FrameType.ERROR, {
        message: `\u001b[2J\u001b]0;owned\u0007${"x".repeat(100_000)}`,
      }));
    });
    const e1 = await assertRejects(
      () => sendFiles([join(src, "a.txt")], "127.0.0.1", early.port, { code: CODE }),
      TransferError,
    );
    await early.done;
    // deno-lint-ignore no-control-regex
    assertEquals(/[\u0000-\u001f\u007f]/.test(e1.message), false, e1.message.slice(0, 80));
    assert(e1.message.length < 400, `${e1.message.length} characters`);
    // A malformed plan is a clean FrameError, not a TypeError from deep inside.
    const bad = await fakeReceiver(async (channel, fingerprint) => {
      await receiverHandshake(channel, CODE, fingerprint);
      await readFrame(channel);
      await channel.write(jsonFrame(FrameType.ANSWER, {
        accept: true,
        files: [{ action: "send", have: "zzz" }],
      }));
      await readFrame(channel).catch(() => {});
    });
    const e2 = await assertRejects(
      () => sendFiles([join(src, "a.txt")], "127.0.0.1", bad.port, { code: CODE }),
      Error,
    );
    await bad.done;
    assertEquals(e2.message, "Cannot decode: the answer does not match the offer");
  });
});

Deno.test("hostile: stray connections (not TLS, or TLS with a malformed share) do not end a receive", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "a.txt"), "after the noise");
    const receiver = await startReceiver(dst, { once: false });
    // Plain TCP that is not TLS.
    const plain = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    await plain.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
    await plain.read(new Uint8Array(64)).catch(() => null);
    plain.close();
    // TLS, then a PAKE frame of the wrong size.
    const socket = tls.connect({
      host: "127.0.0.1",
      port: receiver.port,
      rejectUnauthorized: false,
    });
    await new Promise((r) => socket.once("secureConnect", r));
    const channel = new NodeChannel(socket);
    await channel.write(encodeFrame(FrameType.PAKE, new Uint8Array(10)));
    await readFrame(channel).catch(() => {});
    channel.close();
    const sent = await sendFiles([join(src, "a.txt")], "127.0.0.1", receiver.port, { code: CODE });
    assertEquals(sent.files[0]!.savedAs, "a.txt");
    const summary = await receiver.done;
    assertEquals(summary.files[0]!.savedAs, "a.txt");
    assertEquals(await Deno.readTextFile(join(dst, "a.txt")), "after the noise");
  });
});

Deno.test("file-send resume never mixes in a partial file of another file with the same name, size and mtime", async () => {
  await withDirs(async (src, dst) => {
    const size = 2 * CHUNK_SIZE + 99;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    await Deno.writeFile(join(src, "r.bin"), bytes);
    const mtimeMs = (await Deno.stat(join(src, "r.bin"))).mtime!.getTime();
    // The receiver's partial r.bin is of other content, correctly journaled.
    const other = new Uint8Array(CHUNK_SIZE).fill(7);
    await Deno.writeFile(join(dst, "r.bin.part"), other);
    await Deno.writeTextFile(
      join(dst, "r.bin.part.journal"),
      await unsealedJournal(size, mtimeMs, other),
    );
    const receiver = await startReceiver(dst);
    const sent = await sendFiles([join(src, "r.bin")], "127.0.0.1", receiver.port, {
      code: CODE,
    });
    await receiver.done;
    const want = createHash("sha256").update(bytes).digest("hex");
    const got = createHash("sha256").update(await Deno.readFile(join(dst, "r.bin"))).digest("hex");
    assertEquals(got, want);
    assertEquals(sent.files[0]!.sha256, want);
    assertEquals(sent.bytes, size); // chunk 0 differed, so it crossed too
  });
});
