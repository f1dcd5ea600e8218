/**
 * Issue #13 item 6: the tools speak one vocabulary. The same flags mean the same thing in
 * both clients (`--seconds`, `-o`, `--list-devices`, HOST[:PORT]), both print one song table,
 * one output line, "Now playing" once per song, and a typo gets "did you mean". Each test
 * spawns the real entry points.
 */

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { readWav } from "../lib/audio/wav.ts";
import { SONGS_DIR, startServer } from "./_udp_helpers.ts";
import { startTestServer } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CMD = fromFileUrl(new URL("../cmd/", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(tool: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(CMD, tool), ...args],
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function wavSeconds(path: string): Promise<number> {
  const wav = readWav(await Deno.readFile(path), path);
  return wav.frames / wav.sampleRate;
}

Deno.test("udp-client --list and tls-client list print the same aligned table", opts, async () => {
  await using udp = await startServer();
  await using tls = await startTestServer(SONGS_DIR);
  const u = await run("udp_client.ts", ["--server", `127.0.0.1:${udp.address.port}`, "--list"]);
  const t = await run("tls_client.ts", [
    "list",
    "--server",
    `localhost:${tls.port}`,
    "--ca",
    tls.certs.caCert,
  ]);
  assertEquals([u.code, t.code], [0, 0], u.stderr + t.stderr);
  assertEquals(u.stdout, t.stdout);
  const [header, first] = u.stdout.split("\n");
  assertEquals(header, "#  Title                    Length  Codec     Size");
  assertEquals(first!.indexOf("0:23"), header!.indexOf("Length") + 2);
});

Deno.test("a mistyped song, command or flag gets a 'did you mean'", opts, async () => {
  await using udp = await startServer();
  await using tls = await startTestServer(SONGS_DIR);
  const tlsArgs = ["--server", `localhost:${tls.port}`, "--ca", tls.certs.caCert];
  const meant = `(did you mean "04-nocturne.mp3"?)`;
  const u = await run("udp_client.ts", [`127.0.0.1:${udp.address.port}`, "--song", "nocturen"]);
  assertEquals(u.code, 3, u.stderr);
  assertEquals(u.stderr.trim(), `error: Song "nocturen" does not exist ${meant}`);
  const t = await run("tls_client.ts", ["play", "nocturen", ...tlsArgs]);
  assertEquals(t.code, 3, t.stderr);
  assertEquals(t.stderr.trim(), `error: Song "nocturen" does not exist ${meant}`);
  const command = await run("tls_client.ts", ["radoi", ...tlsArgs]);
  assertEquals(command.code, 2);
  assertStringIncludes(command.stderr, `unknown command "radoi" (did you mean "radio"?)`);
  const flag = await run("udp_client.ts", ["localhost", "--radio", "--secnods", "3"]);
  assertEquals(flag.code, 2);
  assertStringIncludes(flag.stderr, "unknown flag --secnods (did you mean --seconds?)");
});

Deno.test(
  "--seconds and -o mean the same in both clients (songs too; --max-seconds still works)",
  opts,
  async () => {
    await using udp = await startServer();
    await using tls = await startTestServer(SONGS_DIR);
    const dir = await Deno.makeTempDir();
    try {
      const udpWav = join(dir, "udp.wav");
      const u = await run("udp_client.ts", [
        `localhost:${udp.address.port}`,
        "--song",
        "4",
        "--seconds",
        "1.5",
        "-o",
        udpWav,
        "--stats-json",
      ]);
      assertEquals(u.code, 0, u.stderr);
      const stats = JSON.parse(u.stdout);
      assertEquals(stats.ended_by, "seconds");
      // Stopping early is not loss: what was never asked for is not counted as lost.
      assertEquals(stats.lost, 0, u.stderr);
      // Wall time: what arrived in 1.5 s (the server may send a little ahead of real time).
      const udpSeconds = await wavSeconds(udpWav);
      assert(udpSeconds > 0.5 && udpSeconds <= 2, `${udpSeconds} s`);

      const tlsArgs = ["--server", `localhost:${tls.port}`, "--ca", tls.certs.caCert];
      for (const flag of ["--seconds", "--max-seconds"]) {
        const wav = join(dir, `tls${flag}.wav`);
        const t = await run("tls_client.ts", ["play", "4", flag, "1.5", "-o", wav, ...tlsArgs]);
        assertEquals(t.code, 0, t.stderr);
        assertStringIncludes(t.stderr, "Stopped after 1.5 s (--seconds)");
        // A file takes audio faster than real time: it gets exactly that much audio.
        assertEquals(await wavSeconds(wav), 1.5);
      }
      // To a device, --seconds is wall time: a 20 s song on the null device stops long before.
      const started = performance.now();
      const t = await run("tls_client.ts", [
        "play",
        "4",
        "--seconds",
        "1",
        "--audio-backend",
        "null",
        ...tlsArgs,
      ]);
      assertEquals(t.code, 0, t.stderr);
      assert(performance.now() - started < 15_000, "stopped by --seconds, not by the song's end");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("every player lists devices, and says once where the sound goes", opts, async () => {
  for (const tool of ["udp_client.ts", "tls_client.ts"]) {
    const r = await run(tool, ["--list-devices", "--audio-backend", "null"]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "Playback devices (null backend):");
  }
  await using udp = await startServer();
  const r = await run("udp_client.ts", [
    `localhost:${udp.address.port}`,
    "--song",
    "4",
    "--seconds",
    "0.5",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const lines = r.stderr.split("\n");
  const outputLines = lines.filter((l) => /^Output: |no audio device/.test(l));
  assertEquals(outputLines.length, 1, r.stderr);
});

Deno.test(
  "udp-client prints 'Now playing' once per song, though the server repeats it",
  opts,
  async () => {
    await using udp = await startServer();
    const dir = await Deno.makeTempDir();
    try {
      const log = join(dir, "events.jsonl");
      const r = await run("udp_client.ts", [
        `localhost:${udp.address.port}`,
        "--radio",
        "--seconds",
        "11",
        "--output",
        join(dir, "radio.wav"),
        "--log",
        log,
      ]);
      assertEquals(r.code, 0, r.stderr);
      const events = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
      const heard = events.filter((e) => e.event === "now_playing");
      assert(heard.length >= 2, `the server repeats NOW_PLAYING every 5 s: ${heard.length}`);
      const printed = r.stderr.split("\n").filter((l) => l.startsWith("Now playing: "));
      assertEquals(printed.length, new Set(heard.map((e) => e.title)).size, r.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "every tool's --help examples can be pasted: they start with deno task",
  opts,
  async () => {
    for await (const entry of Deno.readDir(CMD)) {
      if (!entry.name.endsWith(".ts")) continue;
      const { SPEC } = await import(join(CMD, entry.name));
      for (const [command] of SPEC.examples as [string, string][]) {
        assert(command.startsWith("deno task "), `${entry.name}: "${command}"`);
      }
    }
  },
);
