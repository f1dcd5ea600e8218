/**
 * The servers' access log (lib/cli/access_log.ts): the real tls-server and udp-server print one
 * line per client event on stderr, `--quiet` silences it, and peer text is escaped.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { formatAccessLine } from "../lib/cli/access_log.ts";
import { makeSongs, testCerts, tlsServerFlags } from "./_tls_helpers.ts";
import { TlsSongClient } from "../lib/tls/client.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** A server process whose stderr is collected; dispose sends SIGINT and waits for it. */
async function spawnServer(cmd: string, args: string[], options: { readyJson?: boolean } = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/${cmd}`, "--port", "0", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: options.readyJson ? "piped" : "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let port: number | undefined;
  if (options.readyJson) {
    // --quiet hides the "listening on" line: the port comes from --ready-json on stdout.
    const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let json = "";
    while (!json.includes("\n")) {
      const { value, done } = await out.read();
      if (done) throw new Error(`${cmd} exited before it was ready`);
      json += value;
    }
    port = JSON.parse(json.split("\n")[0]!).port;
    void (async () => {
      while (!(await out.read()).done) { /* drain */ }
    })();
  }
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = AbortSignal.timeout(20_000);
  while (port === undefined && !/listening on [^ ]+:(\d+)/.test(text)) {
    if (deadline.aborted) throw new Error(`${cmd} did not start: ${text}`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`${cmd} exited: ${text}`);
    text += value;
  }
  port ??= Number(/listening on [^ ]+:(\d+)/.exec(text)![1]);
  const drain = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
  })();
  let stopped: Promise<string> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      child.kill("SIGINT");
      const status = await child.status;
      await drain;
      assertEquals(status.code, 0, text);
      return text;
    })();
  return {
    port,
    /** Everything on stderr so far. */
    get stderr() {
      return text;
    },
    /** Waits (bounded) until stderr matches `re`. */
    async waitFor(re: RegExp, ms = 10_000) {
      const until = Date.now() + ms;
      while (!re.test(text)) {
        if (Date.now() > until) throw new Error(`no ${re} on stderr:\n${text}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop,
    [Symbol.asyncDispose]: async () => void (await stop()),
  };
}

async function tlsServer(songs: string, extra: string[] = [], readyJson = false) {
  const certs = await testCerts();
  const server = await spawnServer("tls_server.ts", [...tlsServerFlags(songs, certs), ...extra], {
    readyJson,
  });
  const caCert = await Deno.readTextFile(certs.caCert);
  const connect = () =>
    TlsSongClient.connect({ hostname: "localhost", port: server.port }, {
      caCerts: [caCert],
      timeoutMs: 10_000,
    });
  return { server, connect };
}

/** `HH:MM:SS 127.0.0.1:PORT ` then `rest`. */
const line = (rest: string) =>
  new RegExp(`^\\d\\d:\\d\\d:\\d\\d 127\\.0\\.0\\.1:\\d+ ${rest}$`, "m");

Deno.test("tls-server prints an access-log line for join, requests, refusal and leave", async () => {
  const songs = await makeSongs({ "one.wav": [0.5], "two.wav": [0.5], "three.wav": [0.5] });
  const { server, connect } = await tlsServer(songs, ["--max-per-ip", "1"]);
  await using _ = server;
  const client = await connect();
  await server.waitFor(line("join"));
  await client.list();
  const r = await client.requestSong("two");
  await client.download("one", { onData: () => {} });
  // A second connection from the same IP is refused (--max-per-ip 1).
  const second = await connect();
  await server.waitFor(line("refused busy"));
  second.close();
  await client.bye();
  await server.waitFor(line("leave"));
  const text = await server.stop();
  assertMatch(text, line("request list"));
  assertMatch(text, line(`request play "two" ${r.result}`));
  assertMatch(text, line('request get "one"'));
  assertMatch(text, line('sent "one.wav" \\d+ bytes in \\d+ ms'));
  // Lines about clients only: the joins and leaves pair up, nothing is said twice.
  const access = text.split("\n").filter((l) => /^\d\d:\d\d:\d\d /.test(l));
  assertEquals(access.filter((l) => l.endsWith(" join")).length, 1, text);
  assertEquals(access.filter((l) => l.endsWith(" leave")).length, 1, text);
  assertEquals(access.filter((l) => l.includes(" request ")).length, 3, text);
});

Deno.test("tls-server --quiet prints no access log", async () => {
  const songs = await makeSongs({ "one.wav": [0.5] });
  const { server, connect } = await tlsServer(songs, ["--quiet", "--ready-json"], true);
  await using _ = server;
  const client = await connect();
  await client.list();
  await client.bye();
  const text = await server.stop();
  assert(!/^\d\d:\d\d:\d\d /m.test(text), text);
});

Deno.test("udp-server prints an access-log line for requests, a stream, the radio and a missing song", async () => {
  await using server = await spawnServer("udp_server.ts", ["--interval", "0"]);
  const client = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}cmd/udp_client.ts`, `127.0.0.1:${server.port}`, ...args],
      cwd: ROOT,
      stdout: "null",
      stderr: "null",
      signal: AbortSignal.timeout(30_000),
    }).output();
  assertEquals((await client(["--list"])).code, 0);
  assertEquals((await client(["--song", "nope"])).code, 3);
  assertEquals((await client(["--song", "4", "--output", "-"])).code, 0);
  await server.waitFor(line("leave \\(\\w+\\)"));
  // A radio listener that leaves (--seconds) after joining.
  assertEquals((await client(["--radio", "--seconds", "0.5", "--output", "-"])).code, 0);
  await server.waitFor(line("leave radio \\(.+\\)"));
  const text = await server.stop();
  assertMatch(text, line("join radio"));
  assertMatch(text, line("request list"));
  assertMatch(text, line('request song "nope"'));
  assertMatch(text, line('not found "nope"'));
  assertMatch(text, line('request song "4"'));
  assertMatch(text, line('join song "04-nocturne.mp3"'));
  assertMatch(text, line('sent "04-nocturne.mp3" \\d+ packets, \\d+ bytes'));
});

Deno.test("access-log lines escape what the peer chose", () => {
  const at = new Date(2026, 0, 1, 12, 0, 1);
  assertEquals(
    formatAccessLine("request", { op: "get", song: 'a"\x1b[2J\nb', remote: "127.0.0.1:5555" }, at),
    '12:00:01 127.0.0.1:5555 request get "a\\"\\x1b[2J\\x0ab"',
  );
  assertEquals(
    formatAccessLine("reject", { code: "busy", remote: "127.0.0.1:5555" }, at),
    "12:00:01 127.0.0.1:5555 refused busy",
  );
  assertEquals(formatAccessLine("listening", { port: 1 }, at), undefined);
  assertEquals(
    formatAccessLine("handshake_failed", { remote: "10.0.0.1:7", error: "eof", count: 1000 }, at),
    "12:00:01 10.0.0.1:7 error handshake failed: eof (1000 so far)",
  );
});
