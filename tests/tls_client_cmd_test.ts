import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { sha256File } from "../lib/hash/sha256.ts";
import { createCertificates } from "../lib/tls/certs.ts";
import { makeSongs, startTestServer } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CLIENT = fromFileUrl(new URL("../cmd/tls_client.ts", import.meta.url));

async function runClient(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLIENT, ...args],
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(20_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test(
  "tls-client command: list, request, queue, unknown song (exit 3), saved file verified",
  opts,
  async () => {
    const dir = await makeSongs({ "alpha.wav": [8], "beta.wav": [8], "gamma.wav": [8] });
    await using t = await startTestServer(dir);
    const common = ["--server", `localhost:${t.port}`, "--ca", t.certs.caCert];
    const list = await runClient(["list", ...common]);
    assertEquals(list.code, 0, list.stderr);
    assertEquals(list.stdout.split("\n")[0], "#  Title      Length  Codec     Size");
    assertStringIncludes(list.stdout, "\n1  alpha.wav    0:08  wav    125 KiB\n");
    assertStringIncludes(list.stdout, "\n3  gamma.wav");

    const now = (await (await t.connect()).nowPlaying()).title;
    const other = ["alpha.wav", "beta.wav", "gamma.wav"].find((s) => s !== now)!;
    const req = await runClient(["request", other, ...common]);
    assertEquals(req.code, 0, req.stderr);
    assertEquals(req.stdout, `Song ${other} has been requested!\n`);
    const again = await runClient(["request", other, ...common]);
    assertEquals(again.stdout, "Song has already been requested\n");
    const missing = await runClient(["request", "zzz", ...common]);
    assertEquals([missing.code, missing.stdout], [3, "Song does not exist\n"]);
    const queue = await runClient(["queue", ...common]);
    assertEquals(queue.stdout, `1. ${other} (0:08)\n`);

    const play = await runClient(["play", "zzz", ...common]);
    assertEquals(play.code, 3);
    assertEquals(play.stderr.trim(), `error: Song "zzz" does not exist`);

    const saveDir = await Deno.makeTempDir();
    const get = await runClient(["get", "beta", saveDir, ...common]);
    assertEquals(get.code, 0, get.stderr);
    assertEquals(
      await sha256File(join(saveDir, "beta.wav")),
      await sha256File(join(dir, "beta.wav")),
    );
    // Nothing but the file: the temporary file was renamed, not left behind.
    assertEquals([...Deno.readDirSync(saveDir)].map((e) => e.name), ["beta.wav"]);

    const wav = join(saveDir, "out.wav");
    const played = await runClient([
      "play",
      "alpha",
      "--output",
      wav,
      "--seconds",
      "1",
      ...common,
    ]);
    assertEquals(played.code, 0, played.stderr);
    assertEquals((await Deno.stat(wav)).size, 44 + 8000 * 2);
  },
);

Deno.test(
  "tls-client command: usage errors exit 2, trust and network errors exit 1 in one line",
  opts,
  async () => {
    const bad = await runClient(["list", "--bogus"]);
    assertEquals(bad.code, 2);
    assertStringIncludes(bad.stderr, "error: unknown flag --bogus");
    const noCmd = await runClient(["dance"]);
    assertEquals(noCmd.code, 2);
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const refused = await runClient(["list", "--server", `127.0.0.1:${port}`]);
    assertEquals(refused.code, 1);
    assertEquals(
      refused.stderr.trim(),
      `error: Cannot connect to 127.0.0.1:${port}: connection refused (is tls-server running there?)`,
    );

    const dir = await makeSongs({ "x.wav": [1] });
    await using t = await startTestServer(dir);
    // A CA that did not sign the server's certificate (certs/ca.crt of another installation).
    const other = await createCertificates(await Deno.makeTempDir({ prefix: "soundsock-other-" }));
    const noCa = await runClient(["list", "--server", `localhost:${t.port}`, "--ca", other.caCert]);
    assertEquals(noCa.code, 1);
    assertStringIncludes(
      noCa.stderr,
      "certificate signed by an unknown authority — pass --ca FILE",
    );
    assert(!noCa.stderr.includes("    at "), "no stack trace");
    const insecure = await runClient(["list", "--server", `localhost:${t.port}`, "--insecure"]);
    assertEquals(insecure.code, 0);
    assertStringIncludes(insecure.stderr, "warning: --insecure");
  },
);
