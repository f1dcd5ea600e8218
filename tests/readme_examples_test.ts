/**
 * Issue #13: every example in README's "Using the tools" block runs, the way README runs it
 * (`deno task …` from the user's own folder). The block is read from README itself, so an
 * example that is changed or added there is run here. What the test changes, and why:
 * servers listen on port 0 (their printed port replaces 9000 / 8443 in the client lines),
 * `--seconds 30` becomes 2, `tls-client radio` gets `--seconds 2` and a UDP `--song` 3 s
 * (bounded time), players
 * get `--audio-backend null` (no sound card), and `ffplay` becomes `ffmpeg` reading the same
 * SDP for 2 s. The Icecast line needs an icecast2 server: tests/tls_icecast_test.ts runs it.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { join } from "@std/path";
import { sha256File } from "../lib/hash/sha256.ts";
import { ROOT, TaskProcess } from "./_task.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** README's example commands, in order, without comments. */
async function readmeExamples(): Promise<string[]> {
  const text = await Deno.readTextFile(join(ROOT, "README.md"));
  const section = text.slice(text.indexOf("## Using the tools"));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error("README has no sh block under Using the tools");
  return block[1]!.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
}

/** Splits a README line into words (no quoting is used there). */
const words = (line: string) => line.split(/\s+/);

/** Runs one `deno task` line from `cwd` (the user's folder) to its end. */
async function runTask(args: string[], cwd: string) {
  await using task = new TaskProcess(["--config", join(ROOT, "deno.json"), ...args], { cwd });
  const status = await task.finished(60_000);
  return { code: status.code, stdout: task.stdout, stderr: task.stderr };
}

/** Starts a server line; resolves once it printed its port. */
async function startServerTask(args: string[], cwd: string) {
  const task = new TaskProcess(
    ["--config", join(ROOT, "deno.json"), ...args, "--port", "0"],
    { cwd },
  );
  const [, port] = await task.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/);
  return { task, port: Number(port) };
}

/** A client line made to reach the test's server and to end. */
function clientArgs(line: string, port: number): string[] {
  const args = words(line).slice(2).map((w) =>
    w === "localhost" || w === "localhost:9000" ? `localhost:${port}` : w
  );
  const seconds = args.indexOf("--seconds");
  if (seconds !== -1) args[seconds + 1] = "2";
  else if (args.includes("--song")) args.push("--seconds", "3");
  if (args[0] === "tls-client") {
    args.push("--server", `localhost:${port}`);
    if (args[1] === "radio" && seconds === -1) args.push("--seconds", "2");
  }
  const plays = args.includes("--song") || args.includes("--radio") ||
    ["play", "radio"].includes(args[1] ?? "");
  if (plays) args.push("--audio-backend", "null");
  return args;
}

Deno.test(
  "README: every example of Using the tools runs as written (servers on port 0)",
  opts,
  async () => {
    const examples = await readmeExamples();
    assert(examples.length >= 12, examples.join("\n"));
    const user = await Deno.makeTempDir({ prefix: "readme-user-" });
    let server: { task: TaskProcess; port: number } | undefined;
    const ran: string[] = [];
    try {
      for (const line of examples) {
        const [program, verb, tool] = words(line);
        if (program === "ffplay") {
          // ffplay needs a screen; ffmpeg reads the same SDP the server wrote.
          const sdp = join(user, words(line).at(-1)!);
          const ff = await new Deno.Command("ffmpeg", {
            args: ["-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i", sdp, "-t", "2"]
              .concat(["-f", "null", "-"]),
            signal: AbortSignal.timeout(20_000),
          }).output();
          assertEquals(ff.code, 0, new TextDecoder().decode(ff.stderr));
          ran.push(line);
          continue;
        }
        assertEquals([program, verb], ["deno", "task"], line);
        if (tool === "udp-server" || tool === "tls-server") {
          if (line.includes("--icecast")) continue; // tests/tls_icecast_test.ts (needs icecast2)
          await server?.task[Symbol.asyncDispose]();
          server = await startServerTask(words(line).slice(2), user);
          if (line.includes("--sdp")) {
            const sdp = join(user, words(line).at(-1)!);
            assertStringIncludes(await Deno.readTextFile(sdp), "m=audio 5004 RTP/AVP");
          }
          ran.push(line);
          continue;
        }
        if (tool === "certs") {
          // README's step: certificates for localhost under certs/ (kept if they exist).
          const r = await runTask(["certs"], user);
          assertEquals(r.code, 0, r.stderr);
          ran.push(line);
          continue;
        }
        if (!server) throw new Error(`${line}: no server started before it`);
        const r = await runTask(clientArgs(line, server.port), user);
        assertEquals(r.code, 0, `${line}\n${r.stderr}`);
        if (line.endsWith("--list") || line.endsWith(" list")) {
          assertMatch(
            r.stdout,
            /^# {2}Title +Length {2}Codec +Size\n1 {2}01-morning-arpeggio\.mp3/,
          );
        }
        if (line.includes("--stats-json")) assertEquals(JSON.parse(r.stdout).lost, 0, r.stderr);
        if (line.includes("--sim-loss")) assertMatch(r.stderr, /observed {2}injected/);
        if (line.includes("--save")) {
          // Relative to the folder the user typed the command in, and verified.
          const saved = join(user, words(line).at(-1)!);
          assertEquals(
            await sha256File(saved),
            await sha256File(join(ROOT, "songs/03-tin-drum-groove.mp3")),
          );
        }
        if (line.includes(" request ")) {
          assertMatch(
            r.stdout,
            /^(Song 02-lantern-waltz\.mp3 has been requested!|Song has already been requested)\n$/,
          );
        }
        ran.push(line);
      }
    } finally {
      await server?.task[Symbol.asyncDispose]();
      await Deno.remove(user, { recursive: true });
    }
    assertEquals(ran.length, examples.length - 1, "all but the Icecast line ran");
  },
);
