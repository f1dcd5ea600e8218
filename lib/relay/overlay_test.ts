import { assert, assertEquals, assertThrows } from "@std/assert";
import { Overlay, SERVER } from "./overlay.ts";

/** Every node: parent and backup exist, neither is the node or below it, ≤ fanout children. */
function assertSound(o: Overlay, maxChildren = o.fanout) {
  for (const id of o.ids()) {
    const p = o.placement(id)!;
    for (const other of [p.parent, p.backup]) {
      assert(other === SERVER || o.has(other), `#${id}: #${other} is not in the overlay`);
      assert(!o.isWithin(other, id), `#${id}: #${other} is itself or a descendant`);
    }
    assert(o.children(id).length <= maxChildren);
  }
  assert(o.children(SERVER).length <= maxChildren);
}

Deno.test("overlay: fanout 1 is a chain, each newcomer served by the last listener, backup its grandparent", () => {
  const o = new Overlay(1);
  for (let id = 1; id <= 5; id++) {
    assertEquals(o.join(id, `n${id}`), { parent: id - 1, backup: Math.max(0, id - 2) });
  }
  assertEquals(o.depth(5), 5);
  assertSound(o);
  assertEquals(o.format(), [
    "server (fanout 1, 5 relaying listeners)",
    "└─ #1 n1 (backup server)",
    "   └─ #2 n2 (backup server)",
    "      └─ #3 n3 (backup #1)",
    "         └─ #4 n4 (backup #2)",
    "            └─ #5 n5 (backup #3)",
  ]);
});

Deno.test("overlay: a chain node that leaves hands its child to its parent (linked-list delete)", () => {
  const o = new Overlay(1);
  for (let id = 1; id <= 5; id++) o.join(id, `n${id}`);
  o.leave(3);
  assertEquals(o.placement(4), { parent: 2, backup: 1 });
  assertEquals(o.placement(5), { parent: 4, backup: 2 });
  assertEquals(o.size, 4);
  o.crash(1);
  assertEquals(o.placement(2), { parent: SERVER, backup: SERVER });
  assertEquals(o.placement(4), { parent: 2, backup: SERVER });
  assertSound(o);
  // A newcomer goes to the tail again.
  assertEquals(o.join(6, "n6").parent, 5);
});

Deno.test("overlay: fanout K builds a breadth-first tree of depth ⌈log_K N⌉", () => {
  for (const [k, n] of [[2, 15], [3, 10], [3, 100], [4, 341]] as const) {
    const o = new Overlay(k);
    for (let id = 1; id <= n; id++) o.join(id, `n${id}`);
    assertSound(o);
    const depth = Math.max(...o.ids().map((id) => o.depth(id)));
    // Full levels hold K + K² + … nodes.
    let levels = 0;
    for (let cap = 0, pow = 1; cap < n; levels++) cap += pow *= k;
    assertEquals(depth, levels, `K=${k} N=${n}`);
    assertEquals(o.children(SERVER).length, k);
  }
});

Deno.test("overlay: a crashed tree node's children move to their backup, extras to free places outside their subtree", () => {
  const o = new Overlay(3);
  for (let id = 1; id <= 13; id++) o.join(id, `n${id}`);
  // 1..3 under the server, 4..12 under 1..3, 13 under 4.
  assertEquals(o.children(1), [4, 5, 6]);
  const before = o.placement(5)!;
  o.crash(1);
  assertEquals(before.backup, SERVER);
  assertSound(o);
  assertEquals(o.size, 12);
  for (const c of [4, 5, 6]) assert(o.has(c) && o.depth(c) <= 3);
  // 4's child 13 stays with 4 unless 4 moved under its own subtree (never).
  assertEquals(o.placement(13)!.parent, 4);
  // Random churn keeps every invariant.
  let next = 14;
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let step = 0; step < 300; step++) {
    const ids = o.ids();
    if (ids.length < 3 || rand() < 0.5) o.join(next++, "x");
    else {
      const victim = ids[Math.floor(rand() * ids.length)]!;
      if (rand() < 0.5) o.leave(victim);
      else o.crash(victim);
    }
    assertSound(o, 3);
  }
});

Deno.test("overlay: standby lists who falls back to a node; bad input is refused", () => {
  const o = new Overlay(2);
  for (let id = 1; id <= 7; id++) o.join(id, "x");
  // server → 1, 2; 1 → 3, 4; 2 → 5, 6; 3 → 7.
  assertEquals(o.standby(1), [7]);
  assertEquals(o.standby(SERVER), [3, 4, 5, 6]);
  for (const c of [3, 4, 5, 6]) assertEquals(o.placement(c)!.backup, SERVER);
  assertThrows(() => new Overlay(0), RangeError);
  assertThrows(() => o.join(3, "again"), RangeError);
  assertThrows(() => o.join(SERVER, "root"), RangeError);
  o.leave(99); // unknown: nothing happens
  assertEquals(o.size, 7);
});
