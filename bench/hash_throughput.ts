/**
 * File hashing throughput: lib/hash `sha256File` vs `openssl dgst -sha256` vs `sha256sum` on
 * the same file in the same run.
 *
 *   deno run -A bench/hash_throughput.ts [--size-mib 1024] [--runs 2]
 *
 * A random file of `--size-mib` MiB is written in 1 MiB blocks to a temp dir, read once to warm
 * the page cache (dropping the cache needs root and a quiet machine; we measure warm reads), then
 * each tool hashes it `--runs` times and the best time counts. All digests must agree. Two
 * diagnostic rows split our time into its parts: the same 1 MiB `read()` loop without hashing,
 * and `Sha256.update` on an in-memory 1 MiB buffer without reading. The file is deleted at the end.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { HASH_READ_SIZE, Sha256, sha256File } from "../lib/hash/sha256.ts";

const MIB = 1024 * 1024;
const args = parseArgs(Deno.args, { string: ["size-mib", "runs"] });
const sizeMib = Number(args["size-mib"] ?? 1024);
const runs = Number(args.runs ?? 2);
if (!(sizeMib > 0) || !(runs > 0)) throw new Error("--size-mib and --runs must be positive");
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

async function tool(cmd: string, argv: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args: argv, stdout: "piped", stderr: "piped" }).output();
  if (!r.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(r.stderr)}`);
  const text = new TextDecoder().decode(r.stdout).trim();
  const hex = /([0-9a-f]{64})/.exec(text)?.[1];
  if (!hex) throw new Error(`${cmd}: no digest in "${text}"`);
  return hex;
}

async function readOnly(path: string): Promise<string> {
  using f = await Deno.open(path);
  const buf = new Uint8Array(HASH_READ_SIZE);
  let total = 0;
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    total += n;
  }
  return `read ${total} bytes`;
}

function hashOnly(block: Uint8Array, blocks: number): Promise<string> {
  const h = new Sha256();
  for (let i = 0; i < blocks; i++) h.update(block);
  return Promise.resolve(h.digestHex());
}

const dir = await Deno.makeTempDir({ prefix: "soundsock-hash-bench-" });
const path = `${dir}/random.bin`;
try {
  // Write the file in 1 MiB blocks of fresh random bytes.
  const t0 = performance.now();
  {
    using f = await Deno.open(path, { write: true, create: true, truncate: true });
    const block = new Uint8Array(MIB);
    for (let i = 0; i < sizeMib; i++) {
      for (let at = 0; at < MIB; at += 65536) {
        crypto.getRandomValues(block.subarray(at, at + 65536));
      }
      let written = 0;
      while (written < MIB) written += await f.write(block.subarray(written));
    }
  }
  const writeS = (performance.now() - t0) / 1000;
  await readOnly(path); // warm the page cache
  const bytes = sizeMib * MIB;
  const inMemory = new Uint8Array(MIB);
  crypto.getRandomValues(inMemory.subarray(0, 65536));

  const contenders: { name: string; run: () => Promise<string>; digest: boolean }[] = [
    { name: "lib/hash sha256File (ours)", run: () => sha256File(path), digest: true },
    {
      name: "openssl dgst -sha256",
      run: () => tool("openssl", ["dgst", "-sha256", path]),
      digest: true,
    },
    { name: "sha256sum", run: () => tool("sha256sum", [path]), digest: true },
    {
      name: "diagnostic: Deno 1 MiB read() loop, no hash",
      run: () => readOnly(path),
      digest: false,
    },
    {
      name: "diagnostic: Sha256.update in memory, no read",
      run: () => hashOnly(inMemory, sizeMib),
      digest: false,
    },
  ];
  const best = new Map<string, number>();
  const digests = new Map<string, string>();
  // Interleave tools run by run so a slow phase of the machine hits all of them alike.
  for (let r = 0; r < runs; r++) {
    for (const c of contenders) {
      const t = performance.now();
      const d = await c.run();
      const s = (performance.now() - t) / 1000;
      best.set(c.name, Math.min(best.get(c.name) ?? Infinity, s));
      if (c.digest) digests.set(c.name, d);
    }
  }
  if (new Set(digests.values()).size !== 1) {
    throw new Error(`digests differ: ${JSON.stringify(Object.fromEntries(digests))}`);
  }
  const openssl = best.get("openssl dgst -sha256")!;
  out(`Reproduce: deno run -A bench/hash_throughput.ts --size-mib ${sizeMib} --runs ${runs}`);
  out(
    `File: ${sizeMib} MiB of random bytes (written in ${writeS.toFixed(1)} s), page cache warm; ` +
      `best of ${runs} runs; digest ${[...digests.values()][0]!.slice(0, 16)}… (all agree)`,
  );
  out("");
  out("| tool | best s | MB/s | × openssl |");
  out("|---|---:|---:|---:|");
  for (const c of contenders) {
    const s = best.get(c.name)!;
    out(
      `| ${c.name} | ${s.toFixed(3)} | ${(bytes / s / 1e6).toFixed(0)} | ${
        (openssl / s).toFixed(2)
      } |`,
    );
  }
  const ratio = openssl / best.get("lib/hash sha256File (ours)")!;
  out("");
  out(
    `ours/openssl throughput = ${ratio.toFixed(2)}× (target ≥ 0.75×: ${
      ratio >= 0.75 ? "met" : "MISSED"
    })`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
