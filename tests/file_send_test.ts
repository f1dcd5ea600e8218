/**
 * file-send end to end: real TLS sockets on port 0, real files in temp folders, the real
 * command for the main round trip and the wrong code.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { join } from "@std/path";
import tls from "node:tls";
import { createHash } from "node:crypto";
import { createEphemeralCert } from "../lib/transfer/cert.ts";
import { NodeChannel, readFrame } from "../lib/transfer/channel.ts";
import {
  CHUNK_SIZE,
  connectToReceiver,
  encodeDataHeader,
  FrameType,
  IntegrityError,
  jsonFrame,
  parseJson,
  receiveFiles,
  sendFiles,
  TransferError,
  TransferRefused,
  WrongCodeError,
} from "../lib/transfer/mod.ts";
import { CODE, receiveArgs, startReceiver, withDirs } from "./_file_send_helpers.ts";

/** Writes `size` pseudo-random bytes (a random 1 MiB block varied per MiB). */
async function randomFile(path: string, size: number): Promise<void> {
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i < block.length; i += 65536) {
    crypto.getRandomValues(block.subarray(i, i + 65536));
  }
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let at = 0, n = 0; at < size; at += block.length, n++) {
    block[0] = n & 0xff;
    block[1] = (n >> 8) & 0xff;
    const part = block.subarray(0, Math.min(block.length, size - at));
    let w = 0;
    while (w < part.length) w += await f.write(part.subarray(w));
  }
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
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

// --- the command -------------------------------------------------------------------------

/** Spawns the real command; resolves its first stdout lines up to `Code:`. */
function spawnCmd(args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check=remote", "cmd/file_send.ts", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return child;
}

async function readUntilCode(
  child: Deno.ChildProcess,
): Promise<{ port: number; code: string; rest: Promise<string> }> {
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`receive ended early: ${text}`);
    text += decoder.decode(value, { stream: true });
    const port = /Listening on [^:]+:(\d+)/.exec(text)?.[1];
    const code = /Code: (\S+)/.exec(text)?.[1];
    if (port && code && text.includes("On the other machine")) {
      const rest = (async () => {
        let more = "";
        for (;;) {
          const r = await reader.read();
          if (r.done) return more;
          more += decoder.decode(r.value, { stream: true });
        }
      })();
      return { port: Number(port), code, rest };
    }
  }
}

Deno.test("file-send command: a random 1 MiB file round-trips identical (exit 0, --json)", async () => {
  await withDirs(async (src, dst) => {
    await randomFile(join(src, "one.bin"), 1 << 20);
    const receiver = spawnCmd(receiveArgs(dst, "--once"));
    const { port, code, rest } = await readUntilCode(receiver);
    assertEquals(code.split("-").length, 3);
    const sender = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check=remote",
        "cmd/file_send.ts",
        "send",
        join(src, "one.bin"),
        `127.0.0.1:${port}`,
        "--code",
        code,
        "--json",
      ],
      stdin: "null",
    }).output();
    const [status, stderr] = await Promise.all([
      receiver.status,
      new Response(receiver.stderr).text(),
      rest,
    ]);
    assertEquals(sender.code, 0, new TextDecoder().decode(sender.stderr));
    assertEquals(status.code, 0, stderr);
    const summary = JSON.parse(new TextDecoder().decode(sender.stdout));
    const want = await sha256Of(join(src, "one.bin"));
    assertEquals(summary.files[0].sha256, want);
    assertEquals(summary.bytes, 1 << 20);
    assertEquals(await sha256Of(join(dst, "one.bin")), want);
    assertMatch(stderr, /Offer from 127\.0\.0\.1:\d+: 1 file, 1\.0 MiB/);
    assertEquals(await listTree(dst), ["one.bin"]);
  });
});

Deno.test("file-send command: a receiver without the native library (TypeScript SHA-256, buffered writes) takes chained hashes from OpenSSL's", async () => {
  await withDirs(async (src, dst) => {
    const size = 2 * CHUNK_SIZE + 12345; // three chunks: each hash goes on from the last state
    await randomFile(join(src, "three.bin"), size);
    const receiver = spawnCmd(receiveArgs(dst, "--once"), {
      SOUNDSOCK_TLS_LIB: join(dst, "no-such-library.so"),
    });
    const { port, code, rest } = await readUntilCode(receiver);
    const sent = await sendFiles([join(src, "three.bin")], "127.0.0.1", port, { code });
    const [status, stderr] = await Promise.all([
      receiver.status,
      new Response(receiver.stderr).text(),
      rest,
    ]);
    assertEquals(status.code, 0, stderr);
    const want = await sha256Of(join(src, "three.bin"));
    assertEquals(sent.files[0]!.sha256, want);
    assertEquals(await sha256Of(join(dst, "three.bin")), want);
  });
});

Deno.test("file-send command: a wrong code ends both with exit 1 and writes nothing", async () => {
  await withDirs(async (src, dst) => {
    await randomFile(join(src, "secret.txt"), 1000);
    const receiver = spawnCmd(receiveArgs(dst, "--once", "--code", CODE));
    const { port, rest } = await readUntilCode(receiver);
    const sender = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check=remote",
        "cmd/file_send.ts",
        "send",
        join(src, "secret.txt"),
        `127.0.0.1:${port}`,
        "--code",
        "velvet-ocean-tree",
      ],
      stdin: "null",
    }).output();
    const [status, stderr] = await Promise.all([
      receiver.status,
      new Response(receiver.stderr).text(),
      rest,
    ]);
    const senderErr = new TextDecoder().decode(sender.stderr);
    assertEquals(sender.code, 1);
    assertEquals(status.code, 1);
    assertMatch(senderErr, /^error: the code does not match/m);
    assertMatch(stderr, /error: the code does not match/);
    assert(!senderErr.includes("    at "), "no stack trace");
    assertEquals(await listTree(dst), []);
  });
});

// --- round trips -------------------------------------------------------------------------

Deno.test("file-send round-trips a 200 MiB file identical (chunk hashes, root, whole-file SHA-256)", async () => {
  await withDirs(async (src, dst) => {
    const size = 200 * 1024 * 1024 + 12345;
    await randomFile(join(src, "big.bin"), size);
    const receiver = await startReceiver(dst);
    const sent = await sendFiles([join(src, "big.bin")], "127.0.0.1", receiver.port, {
      code: CODE,
    });
    const got = await receiver.done;
    const want = await sha256Of(join(src, "big.bin"));
    assertEquals(await sha256Of(join(dst, "big.bin")), want);
    assertEquals(sent.files[0]!.sha256, want);
    assertEquals(got.files[0]!.sha256, want);
    assertEquals(got.files[0]!.root, sent.files[0]!.root);
    assertEquals(sent.bytes, size);
    assertEquals(await listTree(dst), ["big.bin"]);
  });
});

Deno.test("file-send keeps a nested folder: modes, mtimes, an empty folder, unicode names", async () => {
  await withDirs(async (src, dst) => {
    const root = join(src, "proj");
    await Deno.mkdir(join(root, "bin"), { recursive: true });
    await Deno.mkdir(join(root, "empty"));
    await Deno.mkdir(join(root, "données", "日本"), { recursive: true });
    await Deno.writeTextFile(join(root, "bin", "run.sh"), "#!/bin/sh\necho hi\n");
    await Deno.chmod(join(root, "bin", "run.sh"), 0o755);
    await Deno.writeTextFile(join(root, "données", "日本", "ünï cødé 🎵.txt"), "héllo");
    await Deno.writeFile(join(root, "zero.bin"), new Uint8Array());
    await Deno.writeTextFile(join(root, "private.txt"), "p");
    await Deno.chmod(join(root, "private.txt"), 0o600);
    const old = new Date("2020-02-02T02:02:02Z");
    await Deno.utime(join(root, "private.txt"), old, old);
    await Deno.symlink("/etc/passwd", join(root, "link"));
    const receiver = await startReceiver(dst);
    const sent = await sendFiles([root], "127.0.0.1", receiver.port, { code: CODE });
    await receiver.done;
    assertEquals(sent.skippedLinks, [join(root, "link")]);
    assertEquals(await listTree(join(dst, "proj")), [
      "bin/",
      "bin/run.sh",
      "données/",
      "données/日本/",
      "données/日本/ünï cødé 🎵.txt",
      "empty/",
      "private.txt",
      "zero.bin",
    ]);
    assertEquals((await Deno.stat(join(dst, "proj", "bin", "run.sh"))).mode! & 0o777, 0o755);
    const priv = await Deno.stat(join(dst, "proj", "private.txt"));
    assertEquals(priv.mode! & 0o777, 0o600);
    assertEquals(priv.mtime?.getTime(), old.getTime());
    assertEquals(
      await Deno.readTextFile(join(dst, "proj", "données", "日本", "ünï cødé 🎵.txt")),
      "héllo",
    );
    assertEquals((await Deno.stat(join(dst, "proj", "zero.bin"))).size, 0);
  });
});

Deno.test("file-send renames on a name collision: 'name (1).ext'", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "report.txt"), "new");
    await Deno.writeTextFile(join(dst, "report.txt"), "old");
    const receiver = await startReceiver(dst);
    const sent = await sendFiles([join(src, "report.txt")], "127.0.0.1", receiver.port, {
      code: CODE,
    });
    await receiver.done;
    assertEquals(sent.files[0]!.savedAs, "report (1).txt");
    assertEquals(await Deno.readTextFile(join(dst, "report.txt")), "old");
    assertEquals(await Deno.readTextFile(join(dst, "report (1).txt")), "new");
  });
});

// --- resume ------------------------------------------------------------------------------

Deno.test("file-send resumes after the sender is killed at ~50 %: < 60 % sent again, identical", async () => {
  await withDirs(async (src, dst) => {
    const size = 64 * 1024 * 1024;
    await randomFile(join(src, "movie.bin"), size);
    // The receiver survives a lost connection (no --once) and waits for the sender again.
    // The sender is killed once the receiver has verified half of the file.
    const kill = new AbortController();
    const receiver = await startReceiver(dst, {
      once: false,
      onProgress: (done, total) => {
        if (done >= total / 2) kill.abort();
      },
    });
    await assertRejects(
      () =>
        sendFiles([join(src, "movie.bin")], "127.0.0.1", receiver.port, {
          code: CODE,
          signal: kill.signal,
        }),
      TransferError,
    );
    // The partial file and its journal are kept; nothing is in place yet.
    await assertRejects(() => Deno.stat(join(dst, "movie.bin")), Deno.errors.NotFound);
    const again = await sendFiles([join(src, "movie.bin")], "127.0.0.1", receiver.port, {
      code: CODE,
    });
    const got = await receiver.done;
    assert(receiver.events.includes("connection_lost"));
    assert(again.bytes < 0.6 * size, `sent ${again.bytes} of ${size} the second time`);
    assert(again.bytes > 0);
    assertEquals(await sha256Of(join(dst, "movie.bin")), await sha256Of(join(src, "movie.bin")));
    assertEquals(got.files[0]!.root, again.files[0]!.root);
    assertEquals(await listTree(dst), ["movie.bin"]);
  });
});

// --- hostile peers -----------------------------------------------------------------------

/** A TCP relay between a client and `port`; `tamper` may change bytes going to the server. */
function tcpRelay(port: number, tamper: (bytes: Uint8Array, at: number) => void) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const client = await listener.accept();
    const server = await Deno.connect({ hostname: "127.0.0.1", port });
    const pipe = async (from: Deno.Conn, to: Deno.Conn, change: boolean) => {
      const buf = new Uint8Array(65536);
      let at = 0;
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          const chunk = buf.subarray(0, n);
          if (change) tamper(chunk, at);
          at += n;
          await to.write(chunk);
        }
      } catch {
        // a side closed
      }
      try {
        to.close();
      } catch { /* closed */ }
    };
    await Promise.all([pipe(client, server, true), pipe(server, client, false)]);
    listener.close();
  })();
  return { port: listener.addr.port, done };
}

Deno.test("hostile: a relay that flips one byte mid-file is detected and nothing is saved", async () => {
  await withDirs(async (src, dst) => {
    await randomFile(join(src, "data.bin"), 8 << 20);
    const receiver = await startReceiver(dst);
    const flipAt = 3 << 20;
    const relay = await tcpRelay(receiver.port, (chunk, at) => {
      if (at <= flipAt && flipAt < at + chunk.length) chunk[flipAt - at]! ^= 0x01;
    });
    await assertRejects(
      () => sendFiles([join(src, "data.bin")], "127.0.0.1", relay.port, { code: CODE }),
      TransferError,
    );
    await assertRejects(() => receiver.done, TransferError);
    await relay.done;
    assert(!(await listTree(dst)).includes("data.bin"));
  });
});

Deno.test("hostile: a sender whose chunk does not match its hash — .part deleted, sender told, file named", async () => {
  await withDirs(async (_src, dst) => {
    const receiver = await startReceiver(dst);
    const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
    const size = CHUNK_SIZE + 10;
    await conn.channel.write(jsonFrame(FrameType.OFFER, {
      entries: [{ path: "doc.pdf", type: "file", size, mode: 0o644, mtimeMs: 0 }],
      totalBytes: size,
    }));
    const answer = parseJson((await readFrame(conn.channel)).payload);
    assertEquals(answer.accept, true);
    const chunk = new Uint8Array(CHUNK_SIZE).fill(7);
    const lie = new Uint8Array(32).fill(1);
    await conn.channel.write(encodeDataHeader({ file: 0, chunk: 0, sha256: lie }, CHUNK_SIZE));
    await conn.channel.write(chunk);
    const error = await readFrame(conn.channel);
    assertEquals(error.type, FrameType.ERROR);
    assertMatch(String(parseJson(error.payload).message), /doc\.pdf: chunk 0 does not match/);
    conn.close();
    const failure = await assertRejects(() => receiver.done, IntegrityError);
    assertMatch(failure.message, /doc\.pdf/);
    assertEquals(await listTree(dst), []);
  });
});

Deno.test("hostile: a sender that skips or reorders chunks is refused (each chained hash needs the chunks before it)", async () => {
  for (const order of [[1], [0, 2]]) {
    await withDirs(async (_src, dst) => {
      const receiver = await startReceiver(dst);
      const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
      const size = 3 * CHUNK_SIZE + 10;
      await conn.channel.write(jsonFrame(FrameType.OFFER, {
        entries: [{ path: "doc.pdf", type: "file", size, mode: 0o644, mtimeMs: 0 }],
        totalBytes: size,
      }));
      assertEquals(parseJson((await readFrame(conn.channel)).payload).accept, true);
      const chunk = new Uint8Array(CHUNK_SIZE).fill(7);
      const running = createHash("sha256");
      for (const c of order) {
        // Honest chained hashes of what was sent so far: only the order is wrong.
        const sha256 = new Uint8Array(running.update(chunk).copy().digest());
        await conn.channel.write(encodeDataHeader({ file: 0, chunk: c, sha256 }, CHUNK_SIZE));
        await conn.channel.write(chunk);
      }
      const error = await readFrame(conn.channel);
      assertEquals(error.type, FrameType.ERROR);
      assertMatch(
        String(parseJson(error.payload).message),
        order[0] === 1
          ? /chunk 0\/1 does not follow the 0 verified/
          : /0\/2 out of order \(expected 1\)/,
      );
      conn.close();
      await assertRejects(() => receiver.done, TransferError);
      // Nothing in place: at most the .part and journal of what was verified (chunk 0).
      for (const name of await listTree(dst)) assertMatch(name, /^doc\.pdf\.part(\.journal)?$/);
    });
  }
});

Deno.test("hostile: a man in the middle without the code is refused by both sides", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "a.txt"), "secret");
    const receiver = await startReceiver(dst);
    // The relay terminates TLS with its own certificate and forwards the plaintext.
    const { key, cert } = await createEphemeralCert();
    const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, key, cert });
    const relay = (async () => {
      const client = await listener.accept();
      const upstream = tls.connect({
        host: "127.0.0.1",
        port: receiver.port,
        rejectUnauthorized: false,
      });
      await new Promise((r) => upstream.once("secureConnect", r));
      const up = new NodeChannel(upstream);
      const toServer = (async () => {
        const buf = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await client.read(buf);
            if (n === null) break;
            await up.write(buf.slice(0, n));
          }
        } catch { /* closed */ }
        up.close();
      })();
      upstream.on("data", (d: Uint8Array) => client.write(d).catch(() => {}));
      await new Promise((r) => upstream.once("close", r));
      try {
        client.close();
      } catch { /* closed */ }
      await toServer;
      listener.close();
    })();
    await assertRejects(
      () => sendFiles([join(src, "a.txt")], "127.0.0.1", listener.addr.port, { code: CODE }),
      WrongCodeError,
    );
    await assertRejects(() => receiver.done, WrongCodeError);
    await relay;
    assertEquals(await listTree(dst), []);
  });
});

Deno.test("hostile: traversal and reserved names are refused, nothing is written", async () => {
  for (const name of ["../x", "/etc/x", "a/../../x", "a\\..\\x", "CON", "aux.txt", "a/\u0000b"]) {
    await withDirs(async (_src, dst) => {
      const receiver = await startReceiver(dst);
      const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
      await conn.channel.write(jsonFrame(FrameType.OFFER, {
        entries: [{ path: name, type: "file", size: 3, mode: 0o644, mtimeMs: 0 }],
        totalBytes: 3,
      }));
      const answer = parseJson((await readFrame(conn.channel)).payload);
      assertEquals(answer.accept, false, name);
      conn.close();
      await assertRejects(() => receiver.done, TransferRefused);
      assertEquals(await listTree(dst), [], name);
    });
  }
});

Deno.test("hostile: a symlinked folder inside DIR cannot lead outside it", async () => {
  await withDirs(async (src, dst) => {
    const outside = await Deno.makeTempDir({ prefix: "fs-outside-" });
    try {
      await Deno.symlink(outside, join(dst, "docs"));
      await Deno.mkdir(join(src, "docs"));
      await Deno.writeTextFile(join(src, "docs", "x.txt"), "x");
      const receiver = await startReceiver(dst);
      await assertRejects(
        () => sendFiles([join(src, "docs")], "127.0.0.1", receiver.port, { code: CODE }),
        TransferRefused,
      );
      await assertRejects(() => receiver.done, TransferRefused);
      assertEquals(await listTree(outside), []);
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

// --- limits ------------------------------------------------------------------------------

Deno.test("file-send refuses an offer over --max-size (sender exit 3 error)", async () => {
  await withDirs(async (src, dst) => {
    await randomFile(join(src, "big.bin"), 100_000);
    const receiver = await startReceiver(dst, { maxSize: 50_000 });
    const error = await assertRejects(
      () => sendFiles([join(src, "big.bin")], "127.0.0.1", receiver.port, { code: CODE }),
      TransferRefused,
    );
    assertEquals(error.exitCode, 3);
    assertMatch(error.message, /more than --max-size 50000/);
    await assertRejects(() => receiver.done, TransferRefused);
    assertEquals(await listTree(dst), []);
  });
});

Deno.test("file-send receive refuses a DIR it cannot write into", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.chmod(dir, 0o555);
    // As root permissions do not apply: /proc refuses new files for everyone.
    const target = Deno.uid() === 0 ? "/proc" : dir;
    const error = await assertRejects(
      () => receiveFiles({ dir: target, hostname: "127.0.0.1", port: 0 }),
      TransferError,
    );
    assertMatch(error.message, /^Cannot write into /);
  } finally {
    await Deno.chmod(dir, 0o755);
    await Deno.remove(dir);
  }
});

Deno.test("file-send --on-exists skip: identical files (same size and hash) are skipped, others kept beside", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "same.txt"), "identical");
    await Deno.writeTextFile(join(dst, "same.txt"), "identical");
    await Deno.writeTextFile(join(src, "diff.txt"), "version 2");
    await Deno.writeTextFile(join(dst, "diff.txt"), "version 1");
    const receiver = await startReceiver(dst, { onExists: "skip" });
    const sent = await sendFiles(
      [join(src, "same.txt"), join(src, "diff.txt")],
      "127.0.0.1",
      receiver.port,
      { code: CODE },
    );
    await receiver.done;
    assertEquals(sent.files.map((f) => [f.path, f.savedAs, f.sent]), [
      ["same.txt", null, 0],
      ["diff.txt", "diff (1).txt", 9],
    ]);
    assertEquals(sent.bytes, 9);
    assertEquals(await listTree(dst), ["diff (1).txt", "diff.txt", "same.txt"]);
    assertEquals(await Deno.readTextFile(join(dst, "diff.txt")), "version 1");
    assertEquals(await Deno.readTextFile(join(dst, "diff (1).txt")), "version 2");
  });
});

Deno.test("file-send --symlinks follow sends what a link points to; a link back into the folder is skipped", async () => {
  await withDirs(async (src, dst) => {
    const root = join(src, "tree");
    await Deno.mkdir(root);
    await Deno.writeTextFile(join(src, "outside.txt"), "pointed to");
    await Deno.symlink(join(src, "outside.txt"), join(root, "link.txt"));
    await Deno.symlink(root, join(root, "loop"));
    const receiver = await startReceiver(dst);
    const sent = await sendFiles([root], "127.0.0.1", receiver.port, {
      code: CODE,
      symlinks: "follow",
    });
    await receiver.done;
    assertEquals(sent.skippedLinks, [join(root, "loop")]);
    assertEquals(await listTree(dst), ["tree/", "tree/link.txt"]);
    assertEquals(await Deno.readTextFile(join(dst, "tree", "link.txt")), "pointed to");
    assert(!(await Deno.lstat(join(dst, "tree", "link.txt"))).isSymlink);
  });
});
