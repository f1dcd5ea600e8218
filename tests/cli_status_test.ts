/**
 * Issue #13 item 4: on a terminal a player shows a one-line status that updates in place
 * (`A 0:05 / 0:22  buffer 180 ms  lost 0`) and says when the song ended; off a terminal there
 * is no status line at all. The terminal is a real pty (`script` from util-linux).
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { fromFileUrl, join } from "@std/path";
import { startServer } from "./_udp_helpers.ts";
import { makeSongs, startTestServer } from "./_tls_helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CMD = fromFileUrl(new URL("../cmd/", import.meta.url));
const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** Runs a tool on a pty; resolves to everything the terminal showed. */
async function onTerminal(tool: string, args: string[]): Promise<{ code: number; screen: string }> {
  const argv = [Deno.execPath(), "run", "-A", join(CMD, tool), ...args];
  const out = await new Deno.Command("script", {
    args: ["-qfec", argv.map(quote).join(" "), "/dev/null"],
    env: { NO_COLOR: "1", TERM: "xterm" },
    stdin: "null",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, screen: new TextDecoder().decode(out.stdout) };
}

async function offTerminal(tool: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(CMD, tool), ...args],
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test(
  "udp-client on a terminal: a status line redrawn in place; none in a pipe",
  opts,
  async () => {
    await using udp = await startServer();
    const args = [`localhost:${udp.address.port}`, "--song", "4", "--seconds", "2", "-o"];
    const dir = await Deno.makeTempDir();
    try {
      const tty = await onTerminal("udp_client.ts", [...args, join(dir, "a.wav")]);
      assertEquals(tty.code, 0, tty.screen);
      // Redrawn in place: carriage return + erase line, then the status.
      // deno-lint-ignore no-control-regex
      assertMatch(tty.screen, /\r\x1b\[KA 0:0\d \/ 0:2[01] {2}buffer \d+ ms {2}lost 0/);
      // Erased before the statistics: no status line is left in front of them.
      assertStringIncludes(tty.screen, "\r\x1b[K\r\nReception statistics (song 4):");
      const pipe = await offTerminal("udp_client.ts", [...args, join(dir, "b.wav")]);
      assertEquals(pipe.code, 0, pipe.stderr);
      assert(!pipe.stderr.includes("A 0:0") && !pipe.stderr.includes("\r"), pipe.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "tls-client play on a terminal shows the position, and says when the song ended",
  opts,
  async () => {
    const songs = await makeSongs({ "short.wav": [2] });
    await using tls = await startTestServer(songs);
    const common = ["--server", `localhost:${tls.port}`, "--ca", tls.certs.caCert];
    const tty = await onTerminal("tls_client.ts", [
      "play",
      "short",
      "--audio-backend",
      "null",
      ...common,
    ]);
    assertEquals(tty.code, 0, tty.screen);
    // deno-lint-ignore no-control-regex
    assertMatch(tty.screen, /\r\x1b\[KA 0:0[0-2] \/ 0:02 {2}buffer \d+ ms/);
    assertStringIncludes(tty.screen, "Song ended: short.wav");
    const pipe = await offTerminal("tls_client.ts", [
      "play",
      "short",
      "--audio-backend",
      "null",
      ...common,
    ]);
    assertEquals(pipe.code, 0, pipe.stderr);
    assertStringIncludes(pipe.stderr, "Song ended: short.wav");
    assert(!pipe.stderr.includes("A 0:0"), pipe.stderr);
  },
);
