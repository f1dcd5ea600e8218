/**
 * `deno task compile` (scripts/compile.ts) where denort cannot be had: clear one-paragraph
 * errors, and a base binary that is not denort is caught by running the result.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";

const ROOT = new URL("../", import.meta.url).pathname;

async function compile(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}scripts/compile.ts`, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("compile: a DENORT_BIN that does not exist is one clear error", async () => {
  const r = await compile(["tls-client"], { DENORT_BIN: "/nonexistent/denort" });
  assertEquals(r.code, 1);
  assertEquals(r.stderr.trim(), "error: DENORT_BIN=/nonexistent/denort does not exist");
});

Deno.test("compile: a DENORT_BIN that is not denort gives no binary and says why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-compile-" });
  try {
    const r = await compile(["--out-dir", dir, "tls-client"], { DENORT_BIN: "/bin/true" });
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(r.stderr, "does not run");
    assertStringIncludes(r.stderr, "is DENORT_BIN=/bin/true the denort of Deno");
    assert(!r.stderr.includes("Stack backtrace"), r.stderr);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile: unknown tools and targets are usage errors", async () => {
  const tool = await compile(["nope"], {});
  assertEquals(tool.code, 2);
  assertStringIncludes(tool.stderr, 'unknown tool "nope" (one of udp-server, udp-client');
  const target = await compile(["--target", "mips-unknown-linux-gnu"], {});
  assertEquals(target.code, 2);
  assertStringIncludes(target.stderr, "is not one of x86_64-unknown-linux-gnu");
});
