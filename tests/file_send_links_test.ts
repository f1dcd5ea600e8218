/**
 * file-send `--symlinks preserve` (issue 10): links travel as links, and the receiver makes
 * one only when its target, resolved from the link's folder, stays inside DIR. Real TLS
 * sockets on port 0, real files and links in temp folders.
 */

import { assertEquals, assertMatch } from "@std/assert";
import { join } from "@std/path";
import { readFrame } from "../lib/transfer/channel.ts";
import {
  connectToReceiver,
  FrameType,
  jsonFrame,
  linkTargetProblem,
  parseJson,
  sendFiles,
} from "../lib/transfer/mod.ts";
import { CODE, startReceiver, withDirs } from "./_file_send_helpers.ts";

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(
      e.isDirectory
        ? `${rel}/`
        : e.isSymlink
        ? `${rel} -> ${Deno.readLinkSync(join(dir, e.name))}`
        : rel,
    );
    if (e.isDirectory) out.push(...await listTree(join(dir, e.name), rel));
  }
  return out.sort();
}

Deno.test("file-send --symlinks preserve makes links whose target stays inside DIR and refuses the others with a warning", async () => {
  await withDirs(async (src, dst) => {
    const tree = join(src, "tree");
    await Deno.mkdir(join(tree, "sub"), { recursive: true });
    await Deno.writeTextFile(join(tree, "a.txt"), "the file");
    await Deno.symlink("../a.txt", join(tree, "sub", "up.txt")); // tree/a.txt: inside
    await Deno.symlink("sub", join(tree, "down")); // tree/sub: inside
    await Deno.symlink("../../../etc/passwd", join(tree, "sub", "escape")); // climbs out of DIR
    await Deno.symlink("/etc/passwd", join(tree, "absolute"));
    await Deno.symlink("down/..", join(tree, "sneaky")); // `..` after a name
    const events: string[] = [];
    const receiver = await startReceiver(dst, {
      onEvent: (event, fields) => event === "link_refused" && events.push(String(fields.reason)),
    });
    const sent = await sendFiles([tree], "127.0.0.1", receiver.port, {
      code: CODE,
      symlinks: "preserve",
    });
    const got = await receiver.done;
    assertEquals(await listTree(dst), [
      "tree/",
      "tree/a.txt",
      "tree/down -> sub",
      "tree/sub/",
      "tree/sub/up.txt -> ../a.txt",
    ]);
    assertEquals(await Deno.readTextFile(join(dst, "tree", "sub", "up.txt")), "the file");
    assertEquals(events.length, 3);
    assertEquals(sent.refusedLinks.length, 3);
    for (
      const [name, why] of [
        ["tree/absolute", "an absolute target"],
        ["tree/sneaky", 'a ".." after a name'],
        ["tree/sub/escape", "a target outside DIR"],
      ]
    ) {
      const line = events.find((e) => e.includes(`"${name}"`)) ?? "";
      assertMatch(line, new RegExp(`not made: ${why}`), name);
    }
    assertEquals(
      got.links.map((l) => [l.path, l.savedAs]).sort(),
      [
        ["tree/absolute", null],
        ["tree/down", "tree/down"],
        ["tree/sneaky", null],
        ["tree/sub/escape", null],
        ["tree/sub/up.txt", "tree/sub/up.txt"],
      ],
    );
  });
});

Deno.test("hostile: link entries from a hostile sender cannot point outside DIR; an existing name is kept", async () => {
  await withDirs(async (_src, dst) => {
    await Deno.writeTextFile(join(dst, "keep"), "mine");
    const link = (path: string, target: unknown) => ({
      path,
      type: "symlink",
      size: 0,
      mode: 0o777,
      mtimeMs: 0,
      target,
    });
    const entries = [
      { path: "d", type: "dir", size: 0, mode: 0o755, mtimeMs: 0 },
      link("d/ok", "../keep"),
      link("keep", "d"), // the name exists: made as "keep (1)"
      link("x", ".."),
      link("d/y", "../../z"),
      link("z", "d/../.."),
      link("w", 42),
      link("v", "a\u0000b"),
      link("u", "."),
    ];
    const receiver = await startReceiver(dst);
    const conn = await connectToReceiver("127.0.0.1", receiver.port, { code: CODE });
    await conn.channel.write(jsonFrame(FrameType.OFFER, { entries, totalBytes: 0 }));
    const answer = parseJson((await readFrame(conn.channel)).payload);
    assertEquals(answer.accept, true);
    const actions = (answer.files as { action: string }[]).map((p) => p.action);
    assertEquals(actions, ["skip", "link", "link", "skip", "skip", "skip", "skip", "skip", "skip"]);
    await conn.channel.write(jsonFrame(FrameType.DONE, {}));
    assertEquals((await readFrame(conn.channel)).type, FrameType.DONE);
    conn.close();
    await receiver.done;
    assertEquals(await listTree(dst), ["d/", "d/ok -> ../keep", "keep", "keep (1) -> d"]);
    assertEquals(await Deno.readTextFile(join(dst, "keep")), "mine");
  });
});

Deno.test("linkTargetProblem: ../ × depth then plain names only", () => {
  assertEquals(linkTargetProblem(["a", "b", "l"], "../../x"), null);
  assertEquals(linkTargetProblem(["a", "b", "l"], "../.."), null); // DIR itself
  assertEquals(linkTargetProblem(["a", "l"], "../../x"), "a target outside DIR");
  assertEquals(linkTargetProblem(["l"], "x/../y"), 'a ".." after a name');
  assertEquals(linkTargetProblem(["l"], "/x"), "an absolute target");
  assertEquals(linkTargetProblem(["l"], ""), "an empty target");
  assertMatch(linkTargetProblem(["l"], "x//y") ?? "", /empty or "\." segment/);
});
