/**
 * `tls-client shell` driven through a pseudo-terminal, the way a person uses it: `script`
 * (util-linux) runs the real entry point on a pty; the test types keystrokes (arrows, Ctrl+C,
 * Ctrl+D) and reads what the terminal shows, against a real tls-server on port 0.
 */
import { assert, assertEquals } from "@std/assert";
import { join } from "@std/path";
import { makeSongs, startTestServer, type TestServer } from "./_tls_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const UP = "\x1b[A";
const LEFT = "\x1b[D";
const CTRL_C = "\x03";
const CTRL_D = "\x04";

/** What the terminal shows, without the escape sequences readline draws the line with. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replaceAll("\r", "");
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** tls-client shell on a pty. */
class PtyShell implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pump: Promise<void>;
  #raw = "";
  /** Where the next {@linkcode expect} starts looking. */
  #mark = 0;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(server: TestServer, options: { initCwd: string; viaTask?: boolean }) {
    const argv = [
      Deno.execPath(),
      ...(options.viaTask
        ? ["task", "-q", "tls-client"]
        : ["run", "-A", join(ROOT, "cmd/tls_client.ts")]),
      "shell",
      "--server",
      `localhost:${server.port}`,
      "--ca",
      server.certs.caCert,
      "--audio-backend",
      "null",
    ];
    const child = new Deno.Command("script", {
      args: ["-qfec", argv.map(quote).join(" "), "/dev/null"],
      cwd: ROOT,
      // INIT_CWD is what `deno task` passes: the folder the user typed the command in.
      env: { NO_COLOR: "1", INIT_CWD: options.initCwd, TERM: "xterm" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.status = child.status;
    this.#writer = child.stdin.getWriter();
    this.#pump = (async () => {
      for await (const t of child.stdout.pipeThrough(new TextDecoderStream())) this.#raw += t;
    })();
    void child.stderr.cancel();
  }

  /** The whole screen output so far, escape sequences removed. */
  get text(): string {
    return plain(this.#raw);
  }

  /** Types `keys`. */
  async type(keys: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(keys));
  }

  /** Waits (bounded) until the output after the last match shows `what`. */
  async expect(what: string, ms = 20_000): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      const at = this.text.indexOf(what, this.#mark);
      if (at >= 0) {
        this.#mark = at + what.length;
        return;
      }
      if (Date.now() > until) {
        throw new Error(`the shell did not show ${JSON.stringify(what)}; it shows:\n${this.text}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Waits for the shell to exit (bounded) and returns its exit code. */
  async exit(ms = 10_000): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      this.status,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`the shell did not exit:\n${this.text}`)), ms)
      ),
    ]);
    clearTimeout(timer);
    await this.#pump;
    return status.code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* exited */ }
    await this.#writer.close().catch(() => {});
    await this.#pump.catch(() => {});
    await this.status;
  }
}

const PROMPT = "soundsock> ";

async function setUp() {
  // 20 s songs: long enough that a play or the radio is still running at Ctrl+C.
  const songs = await makeSongs({ "my song.wav": [20], "other.wav": [20] });
  const server = await startTestServer(songs);
  const userDir = await Deno.makeTempDir({ prefix: "soundsock-shell-" });
  return { server, userDir, songs };
}

Deno.test("tls-client shell on a terminal: line editing, history, quoting, usage and help", async () => {
  const { server, userDir, songs } = await setUp();
  await using _server = server;
  await using shell = new PtyShell(server, { initCwd: userDir });
  await shell.expect(PROMPT);
  // "lst", two steps left, "i": the line is edited to "list" (no escape codes reach it).
  await shell.type(`lst${LEFT}${LEFT}i\r`);
  await shell.expect("my song.wav");
  await shell.expect(PROMPT);
  await shell.type("now\r");
  await shell.expect("Now playing:");
  await shell.expect(PROMPT);
  // Up twice recalls "list".
  await shell.type(`${UP}${UP}\r`);
  await shell.expect("my song.wav");
  await shell.expect(PROMPT);
  // A name with a space, quoted; FILE is relative to the folder the user started in.
  await shell.type('get "my song" saved.wav\r');
  await shell.expect("Saved");
  await shell.expect(PROMPT);
  const saved = await Deno.stat(join(userDir, "saved.wav"));
  assertEquals(saved.size, (await Deno.stat(join(songs, "my song.wav"))).size);
  await shell.type("play\r");
  await shell.expect("play: missing SONG (usage: play SONG)");
  await shell.type("play my song\r");
  await shell.expect('play: unexpected argument "song"');
  await shell.type('play "my song\r');
  await shell.expect('unclosed " quote');
  await shell.type("help\r");
  await shell.expect("get SONG [FILE|DIR]");
  await shell.type("help get\r");
  await shell.expect("usage: get SONG [FILE|DIR]");
  await shell.type("frobnicate\r");
  await shell.expect('unknown command "frobnicate"');
  // Ctrl+C on a typed line forgets it; Ctrl+D on the empty line leaves, status 0.
  await shell.type(`half-typed${CTRL_C}`);
  await shell.expect("^C");
  await shell.expect(PROMPT);
  await shell.type(CTRL_D);
  assertEquals(await shell.exit(), 0, shell.text);
  assert(!shell.text.includes("half-typed: "), shell.text);
  assert(!shell.text.includes('unknown command "half-typed'), shell.text);
});

Deno.test("deno task tls-client shell: Ctrl+C stops the radio and a play and returns to the prompt; Ctrl+C at an empty prompt leaves", async () => {
  const { server, userDir } = await setUp();
  await using _server = server;
  // Under `deno task`, as README runs it: the terminal's Ctrl+C is a key here, not a signal.
  await using shell = new PtyShell(server, { initCwd: userDir, viaTask: true });
  await shell.expect(PROMPT);
  await shell.type("radio\r");
  await shell.expect("Now playing:");
  await server.waitFor((e) => e.event === "radio_join");
  await shell.type(CTRL_C);
  await shell.expect("Radio stopped.");
  await shell.expect(PROMPT);
  await server.waitFor((e) => e.event === "radio_leave");
  // The shell still works, over its own connection.
  await shell.type("queue\r");
  await shell.expect("The request queue is empty.");
  await shell.expect(PROMPT);
  await shell.type('play "other"\r');
  await shell.expect("Playing other.wav");
  await shell.type(CTRL_C);
  await shell.expect("Stopped.");
  await shell.expect(PROMPT);
  await shell.type("list\r");
  await shell.expect("other.wav");
  await shell.expect(PROMPT);
  await shell.type(CTRL_C);
  assertEquals(await shell.exit(), 0, shell.text);
});

Deno.test("tls-client shell from a pipe: commands one a line, no prompt; SIGINT while waiting for a line ends it", async () => {
  const { server, userDir } = await setUp();
  await using _server = server;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "cmd/tls_client.ts"),
      "shell",
      "--server",
      `localhost:${server.port}`,
      "--ca",
      server.certs.caCert,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1", INIT_CWD: userDir },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode('list\nget "my song" piped.wav\n'));
  // stdin stays open: the shell waits for the next line until SIGINT.
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("other.wav")) out += (await stdout.read()).value ?? "";
  const until = Date.now() + 20_000;
  while (!(await Deno.stat(join(userDir, "piped.wav")).catch(() => null))) {
    assert(Date.now() < until, "get did not save the file");
    await new Promise((r) => setTimeout(r, 25));
  }
  await server.waitFor((e) => e.event === "get_done");
  child.kill("SIGINT");
  const status = await child.status;
  await writer.close().catch(() => {});
  const stderr = await new Response(child.stderr).text();
  assertEquals(status.code, 0, stderr);
  assert(!out.includes(PROMPT), out);
  assert(stderr.includes("Saved"), stderr);
});
