import { assert, assertEquals, assertFalse, assertRejects } from "@std/assert";
import {
  digestsEqual,
  HASH_READ_SIZE,
  Sha256,
  sha256File,
  sha256Hex,
  sha256Reader,
} from "./sha256.ts";

Deno.test("sha256Hex matches the FIPS 180-2 test vectors", () => {
  const enc = new TextEncoder();
  assertEquals(
    sha256Hex(enc.encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assertEquals(
    sha256Hex(new Uint8Array(0)),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  const million = new Uint8Array(1_000_000).fill(0x61); // one million 'a'
  assertEquals(
    sha256Hex(million),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
});

Deno.test("sha256File agrees with sha256sum across block boundaries", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const size of [0, 1, HASH_READ_SIZE - 1, HASH_READ_SIZE, 3 * HASH_READ_SIZE + 7]) {
      const path = `${dir}/f${size}`;
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
      await Deno.writeFile(path, data);
      const out = await new Deno.Command("sha256sum", { args: [path] }).output();
      assert(out.success, "sha256sum failed");
      const expected = new TextDecoder().decode(out.stdout).split(" ")[0];
      assertEquals(await sha256File(path), expected, `size ${size}`);
      assertEquals(new Sha256().update(data).digestHex(), expected);
    }
    // offset hashes a suffix.
    const path = `${dir}/f${HASH_READ_SIZE}`;
    const whole = await Deno.readFile(path);
    assertEquals(await sha256File(path, { offset: 100 }), sha256Hex(whole.subarray(100)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("digestsEqual compares case-insensitively and rejects length or alphabet mismatches", () => {
  const d = sha256Hex(new Uint8Array(1));
  assert(digestsEqual(d, d.toUpperCase()));
  assertFalse(digestsEqual(d, d.slice(0, -1) + (d.endsWith("0") ? "1" : "0")));
  assertFalse(digestsEqual(d, d.slice(1)));
  assertFalse(digestsEqual("zz", "zz"));
});

Deno.test("sha256Reader aborted with a read in flight leaves no unhandled rejection", async () => {
  const controller = new AbortController();
  let reads = 0;
  // The second read (started before the first block is hashed) fails after the abort, as a
  // file's does when it is closed under it.
  const reader = {
    read(p: Uint8Array): Promise<number | null> {
      reads++;
      if (reads === 1) return Promise.resolve(p.length);
      controller.abort();
      return new Promise((_, reject) => setTimeout(() => reject(new Error("closed")), 10));
    },
  };
  await assertRejects(() => sha256Reader(reader, { signal: controller.signal }));
  // Deno's test sanitizer fails the test if the in-flight read's rejection goes unhandled.
  await new Promise((resolve) => setTimeout(resolve, 30));
  assertEquals(reads, 2);
});
