/**
 * `file-send receive` without `--yes` on a terminal asks once, after the code matched, and
 * accepts or declines by the answer. The terminal is a real pty (`script` from util-linux);
 * the sender is the library on 127.0.0.1.
 */

import { assert, assertEquals, assertRejects } from "@std/assert";
import { join } from "@std/path";
import { CODE, receiveArgs } from "./_file_send_helpers.ts";
import { sendFiles, TransferRefused } from "../lib/transfer/mod.ts";

const CMD = new URL("../cmd/file_send.ts", import.meta.url).pathname;
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Runs `receive` in a pty; answers `answer` once "Accept?" shows; sends one file. */
async function receiveOnTerminal(answer: string) {
  const src = await Deno.makeTempDir({ prefix: "fs-src-" });
  const dst = await Deno.makeTempDir({ prefix: "fs-dst-" });
  await Deno.writeTextFile(join(src, "note.txt"), "asked first");
  const argv = [
    Deno.execPath(),
    "run",
    "-A",
    CMD,
    ...receiveArgs(dst, "--code", CODE, "--once"),
  ];
  const child = new Deno.Command("script", {
    args: ["-qfec", argv.map(quote).join(" "), "/dev/null"],
    env: { NO_COLOR: "1", TERM: "xterm" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  const stdin = child.stdin.getWriter();
  let screen = "";
  const seen = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      waiters.push({ pattern, resolve, reject });
      check();
    });
  const waiters: {
    pattern: RegExp;
    resolve: (m: RegExpExecArray) => void;
    reject: (e: Error) => void;
  }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.pattern.exec(screen);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const bytes of child.stdout) {
      screen += decoder.decode(bytes, { stream: true });
      check();
    }
    for (const w of waiters) w.reject(new Error(`no ${w.pattern} on the screen:\n${screen}`));
  })();
  try {
    const port = Number((await seen(/Listening on 127\.0\.0\.1:(\d+)/))[1]);
    const sending = sendFiles([join(src, "note.txt")], "127.0.0.1", port, { code: CODE });
    sending.catch(() => {});
    await seen(/Accept\? \[Y\/n\]/);
    await stdin.write(new TextEncoder().encode(`${answer}\n`));
    const sent = await sending.then(() => "sent", (error) => error);
    const status = await child.status;
    await stdin.close().catch(() => {});
    await reading;
    await child.stderr.cancel();
    const saved = await Deno.readTextFile(join(dst, "note.txt")).catch(() => null);
    return { sent, code: status.code, screen, saved };
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
}

Deno.test("file-send receive on a terminal without --yes asks once; 'y' accepts", async () => {
  const r = await receiveOnTerminal("y");
  assertEquals(r.sent, "sent");
  assertEquals(r.code, 0);
  assertEquals(r.saved, "asked first");
  assertEquals(r.screen.match(/Accept\? \[Y\/n\]/g)?.length, 1);
  // The offer was shown before the question.
  assert(r.screen.indexOf("note.txt") < r.screen.indexOf("Accept?"), r.screen);
});

Deno.test("file-send receive on a terminal without --yes asks once; 'n' declines, nothing is written", async () => {
  const r = await receiveOnTerminal("n");
  assert(r.sent instanceof TransferRefused, String(r.sent));
  assertEquals(r.code, 3);
  assertEquals(r.saved, null);
  assertEquals(r.screen.match(/Accept\? \[Y\/n\]/g)?.length, 1);
  await assertRejects(() => Promise.reject(r.sent), TransferRefused, "the receiver declined");
});
