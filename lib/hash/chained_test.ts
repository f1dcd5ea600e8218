import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { createHash } from "node:crypto";
import {
  _chainInTypeScript,
  ChainedSha256,
  chainedSha256Engine,
  loadChainedSha256,
  SHA256_STATE_SIZE,
  Sha256StateError,
} from "./chained.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Steps of these sizes (multiples of 64 but the last) over random bytes: the digest after
 * each step must be node:crypto's SHA-256 of the prefix. */
const STEPS = [0, 64, 4096, 192, 65536 * 3, 64 * 1001, 55, 0];

Deno.test("ChainedSha256: the digest after each step is the SHA-256 of everything so far", async () => {
  await loadChainedSha256();
  for (const steps of [STEPS, [3], [56], [63], [64], [120], [0]]) {
    const data = randomBytes(steps.reduce((a, b) => a + b, 0));
    const hash = ChainedSha256.fresh();
    let at = 0;
    for (const [i, size] of steps.entries()) {
      if (i > 0 && (steps[i - 1]! % 64) !== 0) break;
      const digest = await hash.update(data.subarray(at, at + size));
      at += size;
      assertEquals(hex(digest), createHash("sha256").update(data.subarray(0, at)).digest("hex"));
      assertEquals(hash.bytes, at);
    }
  }
  assertEquals(
    hex(await ChainedSha256.fresh().update(new TextEncoder().encode("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert(["openssl", "typescript"].includes(chainedSha256Engine()!));
});

Deno.test("ChainedSha256: a saved state goes on in a new object as if never stopped", async () => {
  const data = randomBytes(3 * 4096 + 100);
  const first = ChainedSha256.fresh();
  await first.update(data.subarray(0, 4096));
  const saved = first.stateHex()!;
  assertEquals(saved.length, 2 * SHA256_STATE_SIZE);
  const resumed = ChainedSha256.fromState(saved);
  assertEquals(resumed.bytes, 4096);
  await resumed.update(data.subarray(4096, 3 * 4096));
  const digest = await resumed.update(data.subarray(3 * 4096));
  assertEquals(hex(digest), createHash("sha256").update(data).digest("hex"));
  // After a partial block there is no state to save, and nothing may follow.
  assertEquals(resumed.stateHex(), null);
  await assertRejects(() => resumed.update(new Uint8Array(64)), Sha256StateError);
});

Deno.test("ChainedSha256.fromState refuses what is not a state at a block boundary", () => {
  assertThrows(() => ChainedSha256.fromState("00"), Sha256StateError);
  assertThrows(() => ChainedSha256.fromState("zz".repeat(40)), Sha256StateError);
  // Byte count 63: inside a block.
  assertThrows(() => ChainedSha256.fromState("00".repeat(39) + "3f"), Sha256StateError);
});

Deno.test("the TypeScript engine equals node:crypto step by step (the fallback)", () => {
  const data = randomBytes(64 * 37 + 71);
  const state = new Uint8Array(SHA256_STATE_SIZE);
  const iv = ChainedSha256.fresh().stateHex()!;
  for (let i = 0; i < SHA256_STATE_SIZE; i++) state[i] = parseInt(iv.slice(2 * i, 2 * i + 2), 16);
  const digest = new Uint8Array(32);
  let at = 0;
  for (const size of [64, 640, 64 * 36 - 704 + 64, 71]) {
    const result = _chainInTypeScript(state, data.subarray(at, at + size), digest);
    at += size;
    assertEquals(result, at % 64 === 0 ? 1 : 0);
    assertEquals(hex(digest), createHash("sha256").update(data.subarray(0, at)).digest("hex"));
  }
  assertEquals(at, data.length);
});
