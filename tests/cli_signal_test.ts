/**
 * Ctrl+C under `deno task`, as README runs every tool: SIGINT goes to the whole process group,
 * so the tool receives it twice (from the "terminal" and forwarded by `deno task`). One Ctrl+C
 * must still give the clean stop; a deliberate second one, later, force-quits.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { delay } from "@std/async/delay";
import { join } from "@std/path";
import { readWav } from "../lib/audio/wav.ts";
import { makeSongs, testCerts, tlsServerFlags } from "./_tls_helpers.ts";
import { SIGNAL_GRACE_MS } from "../lib/cli/run.ts";
import { TaskProcess } from "./_task.ts";

const LISTENING = /listening on [^ ]+:(\d+)/;

Deno.test("Ctrl+C on deno task udp-server: exit 0 and the 'stopped' summary", async () => {
  await using server = new TaskProcess(["udp-server", "--port", "0"]);
  await server.waitForStderr(LISTENING);
  server.signalGroup("SIGINT");
  const status = await server.finished();
  assertEquals(status.code, 0, server.stderr);
  assertStringIncludes(server.stderr, "udp-server stopped:");
});

Deno.test("Ctrl+C on deno task udp-client: statistics, final log event, finished WAV", async () => {
  const dir = await Deno.makeTempDir({ prefix: "soundsock-sigint-" });
  try {
    const songs = await makeSongs({ "long.wav": [30, 8000, 1] });
    await using server = new TaskProcess(["udp-server", "--port", "0", "--songs", songs]);
    const port = (await server.waitForStderr(LISTENING))[1]!;
    const wav = join(dir, "x.wav");
    const log = join(dir, "client.jsonl");
    await using client = new TaskProcess([
      "udp-client",
      `127.0.0.1:${port}`,
      "--song",
      "1",
      "--output",
      wav,
      "--log",
      log,
    ]);
    // Interrupt once audio has reached the file (more than the 44-byte header).
    await client.until(
      () => {
        try {
          return Deno.statSync(wav).size > 44 + 8000 ? true : undefined;
        } catch {
          return undefined;
        }
      },
      30_000,
      "audio in the WAV file",
    );
    client.signalGroup("SIGINT");
    const status = await client.finished();
    assertEquals(status.code, 130, client.stderr); // a client stopped by the user: 130
    assertStringIncludes(client.stderr, "Reception statistics");
    const events = (await Deno.readTextFile(log)).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(events.at(-1).event, "stats");
    assertEquals(events.at(-1).ending, "interrupted");
    const bytes = await Deno.readFile(wav);
    const data = readWav(bytes, wav);
    assertEquals(data.dataOffset + data.dataBytes!, bytes.length, "header patched to the size");
    assert(data.frames > 0, "the WAV header says it holds samples");
    server.signalGroup("SIGINT");
    assertEquals((await server.finished()).code, 0, server.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ctrl+C on deno task tls-server: exit 0, 'stopped', clients get close_notify", async () => {
  const certs = await testCerts();
  const songs = await makeSongs({ "a.wav": [1, 8000, 1] });
  const dir = await Deno.makeTempDir({ prefix: "soundsock-sigint-" });
  const log = join(dir, "server.jsonl");
  try {
    await using server = new TaskProcess(
      ["tls-server", "--port", "0", ...tlsServerFlags(songs, certs), "--log", log],
    );
    const port = Number((await server.waitForStderr(LISTENING))[1]);
    const caCerts = [await Deno.readTextFile(certs.caCert)];
    const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts });
    try {
      await conn.handshake();
      await server.until(
        () => Deno.readTextFileSync(log).includes(`"event":"connect"`) || undefined,
        10_000,
        "the server's connect event",
      );
      server.signalGroup("SIGINT");
      // Throws on an EOF without close_notify (rustls: UnexpectedEof).
      const received = new TextDecoder().decode(await readUntilClosedStrict(conn));
      assertStringIncludes(received, "The server is stopping");
    } finally {
      conn.close();
    }
    const status = await server.finished();
    assertEquals(status.code, 0, server.stderr);
    assertStringIncludes(server.stderr, "tls-server stopped");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const SLOW_STOP = ["--eval", "deno run -A tests/_slow_stop.ts"];

Deno.test("one Ctrl+C delivered twice under deno task waits for the clean stop", async () => {
  await using tool = new TaskProcess(SLOW_STOP);
  await tool.waitForStderr(/ready/);
  tool.signalGroup("SIGINT");
  tool.signalGroup("SIGINT"); // the copy deno task forwards, as fast as it comes
  const status = await tool.finished();
  assertEquals(status.code, 0, tool.stderr);
  assertStringIncludes(tool.stderr, "stopped");
});

Deno.test("a second Ctrl+C after the grace force-quits with 130", async () => {
  await using tool = new TaskProcess(SLOW_STOP);
  await tool.waitForStderr(/ready/);
  tool.signalGroup("SIGINT");
  await tool.waitForStderr(/stopping/);
  await delay(SIGNAL_GRACE_MS + 200); // a deliberate second press, well after the first
  tool.signalGroup("SIGINT");
  const status = await tool.finished();
  assertEquals(status.code, 130, tool.stderr);
  assert(!tool.stderr.includes("stopped"), tool.stderr);
});

/** Reads to the end; an error (such as EOF without close_notify) fails the test. */
async function readUntilClosedStrict(conn: Deno.TlsConn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (let total = 0; total < 16 * 1024 * 1024;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
