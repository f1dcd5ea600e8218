/**
 * Relative paths under `deno task`: the task runs in the repository root, but a path the user
 * types means the folder they typed it in (`INIT_CWD`). Each test runs `deno task …` from a
 * subdirectory of the repository and checks where files are read from and written to.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { basename, join } from "@std/path";
import { makeSongs, makeWav, testCerts } from "./_tls_helpers.ts";
import { ROOT, TaskProcess } from "./_task.ts";

const LISTENING = /listening on [^ ]+:(\d+)/;

/**
 * A scratch subdirectory inside the repository (so `deno task` finds deno.json above it), and
 * file names unique to it. Disposing removes it, and those names from the repository root
 * where a regression would have put them.
 */
async function subdirectory(): Promise<
  { path: string; name: (ext: string) => string } & AsyncDisposable
> {
  await Deno.mkdir(join(ROOT, ".cache"), { recursive: true });
  const path = await Deno.makeTempDir({ dir: join(ROOT, ".cache"), prefix: "cwd-test-" });
  const used: string[] = [];
  const name = (ext: string) => {
    used.push(`${basename(path)}.${ext}`);
    return used.at(-1)!;
  };
  return {
    path,
    name,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
      for (const n of used) await Deno.remove(join(ROOT, n)).catch(() => {});
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("cd songs && deno task udp-server --songs . serves songs/, not the repo root", async () => {
  const songs = join(ROOT, "songs");
  let expected = 0;
  for await (const e of Deno.readDir(songs)) if (/\.(mp3|wav|flac)$/i.test(e.name)) expected++;
  await using server = new TaskProcess(["udp-server", "--port", "0", "--songs", "."], {
    cwd: songs,
  });
  await server.waitForStderr(LISTENING);
  assertMatch(server.stderr, new RegExp(`— ${expected} songs,`));
  server.signalGroup("SIGINT");
  assertEquals((await server.finished()).code, 0, server.stderr);
});

Deno.test("udp-client --output and --log from a subdirectory write there", async () => {
  await using scratch = await subdirectory();
  const sub = scratch.path;
  const songs = await makeSongs({ "a.wav": [0.5, 8000, 1] });
  await using server = new TaskProcess([
    "udp-server",
    "--port",
    "0",
    "--interval",
    "0",
    "--songs",
    songs,
  ]);
  const port = (await server.waitForStderr(LISTENING))[1]!;
  const wav = scratch.name("wav"), log = scratch.name("jsonl");
  await using client = new TaskProcess([
    "udp-client",
    `127.0.0.1:${port}`,
    "--song",
    "1",
    "--output",
    wav,
    "--log",
    log,
  ], { cwd: sub });
  const status = await client.finished();
  assertEquals(status.code, 0, client.stderr);
  assert(!(await exists(join(ROOT, wav))), "--output landed in the repository root");
  assert(!(await exists(join(ROOT, log))), "--log landed in the repository root");
  assert(await exists(join(sub, wav)), `--output is not in the subdirectory: ${client.stderr}`);
  assert(await exists(join(sub, log)), "--log is not in the subdirectory");
  server.signalGroup("SIGINT");
  assertEquals((await server.finished()).code, 0, server.stderr);
});

Deno.test("tls-server --songs --cert --key and tls-client --ca, get FILE from a subdirectory", async () => {
  await using scratch = await subdirectory();
  const sub = scratch.path;
  const certs = await testCerts();
  await Deno.copyFile(certs.serverCert, join(sub, "server.crt"));
  await Deno.copyFile(certs.serverKey, join(sub, "server.key"));
  await Deno.copyFile(certs.caCert, join(sub, "ca.crt"));
  await Deno.mkdir(join(sub, "music"));
  const song = makeWav(0.5, 8000, 1, 42);
  await Deno.writeFile(join(sub, "music", "tune.wav"), song);
  await using server = new TaskProcess([
    "tls-server",
    "--port",
    "0",
    "--songs",
    "music",
    "--cert",
    "server.crt",
    "--key",
    "server.key",
  ], { cwd: sub });
  const port = (await server.waitForStderr(LISTENING))[1]!;
  assertStringIncludes(server.stderr, "(1 songs)");
  // CI installs libssl-dev: `deno task tls-server` must run on OpenSSL, and say so.
  const engine = (await server.waitForStderr(/tls-server: TLS by (.+)/))[1]!;
  assert(engine.startsWith("OpenSSL "), `TLS engine: ${engine}`);
  const saved = scratch.name("wav");
  await using client = new TaskProcess([
    "tls-client",
    "get",
    "tune",
    saved,
    "--server",
    `localhost:${port}`,
    "--ca",
    "ca.crt",
  ], { cwd: sub });
  const status = await client.finished();
  assertEquals(status.code, 0, client.stderr);
  assert(!(await exists(join(ROOT, saved))), "get FILE landed in the repository root");
  assertEquals(await Deno.readFile(join(sub, saved)), song);
  server.signalGroup("SIGINT");
  assertEquals((await server.finished()).code, 0, server.stderr);
});
