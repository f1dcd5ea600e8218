/**
 * The first errors a newcomer meets (before `deno task certs`, a port already taken, …): each
 * is one line that says the real cause and the fix, exits 1, and prints no usage text or
 * stack trace.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { join } from "@std/path";
import { makeSongs, startTestServer, testCerts } from "./_tls_helpers.ts";
import { ROOT } from "./_task.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Runs `cmd/<file>` with `args` in `cwd` (default: a fresh temp dir, so no certs/ there). */
async function run(file: string, args: string[], cwd?: string) {
  cwd ??= await Deno.makeTempDir({ prefix: "soundsock-first-run-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "cmd", file), ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
}

/** One `error:` line and nothing else: no usage, no stack trace. */
function assertOneErrorLine(stderr: string): void {
  const lines = stderr.split("\n");
  assertEquals(lines.length, 1, `expected one line:\n${stderr}`);
  assert(lines[0]!.startsWith("error: "), stderr);
}

Deno.test(
  "tls-client before deno task certs: says certs/ca.crt is missing and the fix",
  opts,
  async () => {
    await using server = await startTestServer(await makeSongs({ "a.wav": [1] }));
    // cwd without certs/: the default --ca certs/ca.crt does not exist.
    const r = await run("tls_client.ts", ["list", "--server", `localhost:${server.port}`]);
    assertEquals(r.code, 1, r.stderr);
    assertOneErrorLine(r.stderr);
    assertStringIncludes(r.stderr, "certificate signed by an unknown authority");
    assertStringIncludes(r.stderr, `"certs/ca.crt" (the default --ca) does not exist`);
    assertStringIncludes(r.stderr, "run `deno task certs`");
  },
);

Deno.test(
  "tls-client --ca FILE that does not exist: names the file and the fix",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "soundsock-first-run-" });
    const ca = join(dir, "no", "ca.crt");
    const r = await run("tls_client.ts", ["list", "--ca", ca]);
    assertEquals(r.code, 1, r.stderr);
    assertOneErrorLine(r.stderr);
    assertStringIncludes(r.stderr, `The CA certificate "${ca}" (--ca) does not exist`);
    assertStringIncludes(r.stderr, "run `deno task certs`");
    assertStringIncludes(r.stderr, "--pin SHA256");
  },
);

Deno.test("tls-client --ca that is not a certificate says so", opts, async () => {
  const r = await run("tls_client.ts", ["list", "--ca", "/dev/null"]);
  assertEquals(r.code, 1, r.stderr);
  assertOneErrorLine(r.stderr);
  assertStringIncludes(r.stderr, `"/dev/null" (--ca) holds no PEM certificate`);
});

Deno.test(
  "tls-client with no server: connection refused, is tls-server running?",
  opts,
  async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const r = await run("tls_client.ts", ["list", "--server", `127.0.0.1:${port}`, "--insecure"]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(
      r.stderr,
      `error: Cannot connect to 127.0.0.1:${port}: connection refused (is tls-server running there?)`,
    );
  },
);

Deno.test(
  "tls-server before deno task certs: the certificate is missing, run deno task certs",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "soundsock-first-run-" });
    const songs = await makeSongs({ "a.wav": [1] });
    // Defaults (certs/server.crt in a cwd without certs/) and explicit paths in a temp dir.
    for (
      const [args, path] of [
        [[], "certs/server.crt"],
        [
          ["--cert", join(dir, "server.crt"), "--key", join(dir, "server.key")],
          join(dir, "server.crt"),
        ],
      ] as const
    ) {
      const r = await run("tls_server.ts", ["--port", "0", "--songs", songs, ...args]);
      assertEquals(r.code, 1, r.stderr);
      assertOneErrorLine(r.stderr);
      assertStringIncludes(r.stderr, `The server certificate "${path}" (--cert) does not exist`);
      assertStringIncludes(r.stderr, "run `deno task certs`");
    }
    // The certificate is there but not the key: the key is named.
    const certs = await testCerts();
    const key = join(dir, "server.key");
    const r = await run("tls_server.ts", [
      "--port",
      "0",
      "--songs",
      songs,
      "--cert",
      certs.serverCert,
      "--key",
      key,
    ]);
    assertEquals(r.code, 1, r.stderr);
    assertOneErrorLine(r.stderr);
    assertStringIncludes(r.stderr, `The server private key "${key}" (--key) does not exist`);
  },
);

Deno.test("servers on a port in use: say so and how to get another port", opts, async () => {
  const songs = await makeSongs({ "a.wav": [1] });
  const certs = await testCerts();
  using tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tcpPort = String((tcp.addr as Deno.NetAddr).port);
  const tls = await run("tls_server.ts", [
    "--port",
    tcpPort,
    "--songs",
    songs,
    "--cert",
    certs.serverCert,
    "--key",
    certs.serverKey,
  ]);
  assertEquals(tls.code, 1, tls.stderr);
  assertOneErrorLine(tls.stderr);
  assertStringIncludes(tls.stderr, "address in use (is another tls-server running?");
  assertStringIncludes(tls.stderr, "--port 0 takes any free one");

  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const udpPort = String((udp.addr as Deno.NetAddr).port);
  const u = await run("udp_server.ts", ["--port", udpPort, "--songs", songs]).finally(() =>
    udp.close()
  );
  assertEquals(u.code, 1, u.stderr);
  assertOneErrorLine(u.stderr);
  assertStringIncludes(u.stderr, "address in use (is another udp-server running?");
});

Deno.test("servers without songs name the folder and what belongs in it", opts, async () => {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-first-run-" });
  const r = await run("udp_server.ts", ["--port", "0", "--songs", join(dir, "nope")]);
  assertEquals(r.code, 1, r.stderr);
  assertOneErrorLine(r.stderr);
  assertStringIncludes(r.stderr, `Cannot open songs folder "${join(dir, "nope")}": no such folder`);
  const certs = await testCerts();
  for (const file of ["udp_server.ts", "tls_server.ts"]) {
    const args = [
      "--port",
      "0",
      "--songs",
      dir,
      "--cert",
      certs.serverCert,
      "--key",
      certs.serverKey,
    ];
    const empty = await run(file, file === "udp_server.ts" ? args.slice(0, 4) : args);
    assertEquals(empty.code, 1, empty.stderr);
    assertOneErrorLine(empty.stderr);
    assertStringIncludes(empty.stderr, `No songs to serve in "${dir}" (mp3, wav or flac files)`);
  }
});
