/**
 * Runs a tool the way README does — `deno task NAME …` — in its own process group, so a test
 * can press Ctrl+C the way a terminal does: SIGINT to every process of the group (`deno task`
 * and the tool it started), not just to one pid.
 *
 * @module
 */

import { delay } from "@std/async/delay";

/** The repository root (where deno.json and its tasks live). */
export const ROOT = new URL("../", import.meta.url).pathname;

/** A `deno task` running in its own session and process group. */
export class TaskProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #drain: Promise<void>;
  #stderr = "";
  #stdout = "";
  #exited = false;
  /** Resolves with the exit status of `deno task` (the tool's status). */
  readonly status: Promise<Deno.CommandStatus>;

  /**
   * Starts `deno task ...taskArgs` (e.g. `["udp-server", "--port", "0"]`, or
   * `["--eval", "deno run …"]`) in `cwd` (default: the repository root).
   */
  constructor(taskArgs: string[], options: { cwd?: string } = {}) {
    // A fresh INIT_CWD: `deno task` keeps one it inherits (e.g. from `deno task test`).
    const env = Deno.env.toObject();
    delete env.INIT_CWD;
    env.NO_COLOR = "1";
    // setsid: not a group leader here, so it execs in place and the pid is the group id.
    this.#child = new Deno.Command("setsid", {
      args: [Deno.execPath(), "task", "-q", ...taskArgs],
      cwd: options.cwd ?? ROOT,
      clearEnv: true,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status.then((s) => {
      this.#exited = true;
      return s;
    });
    const pump = async (
      stream: ReadableStream<Uint8Array<ArrayBuffer>>,
      add: (s: string) => void,
    ) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
    };
    this.#drain = Promise.all([
      pump(this.#child.stderr, (t) => (this.#stderr += t)),
      pump(this.#child.stdout, (t) => (this.#stdout += t)),
    ]).then(() => {});
  }

  /** Everything printed on stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Everything printed on stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** Waits until stderr matches `pattern`; returns the match. */
  async waitForStderr(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return await this.until(() => this.#stderr.match(pattern) ?? undefined, timeoutMs, pattern);
  }

  /** Polls `check` until it returns a value (or the process exits, or time runs out). */
  async until<T>(check: () => T | undefined, timeoutMs = 30_000, what: unknown = "a condition") {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined) return value;
      if (this.#exited) {
        await this.#drain;
        throw new Error(`exited before ${what}; stderr:\n${this.#stderr}`);
      }
      if (performance.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; stderr:\n${this.#stderr}`);
      }
      await delay(25);
    }
  }

  /** Sends `signal` to the whole process group, as a terminal's Ctrl+C does. */
  signalGroup(signal: Deno.Signal = "SIGINT"): void {
    Deno.kill(-this.#child.pid, signal);
  }

  /** Waits for the exit and for all output. */
  async finished(timeoutMs = 20_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.#kill(), timeoutMs);
    try {
      const status = await this.status;
      await this.#drain;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  #kill(): void {
    try {
      if (!this.#exited) Deno.kill(-this.#child.pid, "SIGKILL");
    } catch { /* already gone */ }
  }

  /** Kills the group if it is still running, and waits. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#kill();
    await this.status;
    await this.#drain;
  }
}
