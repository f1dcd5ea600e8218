/**
 * Lines typed at an interactive prompt. On a terminal it is `node:readline` in raw mode: line
 * editing (arrows, Home/End, Ctrl+A/E/U/W), history (up/down), and Ctrl+C delivered as a key,
 * not a signal — so Ctrl+C can stop what runs now (see {@linkcode LineReaderOptions.onInterrupt})
 * and leave the program at its prompt. Not on a terminal (a pipe, a file) it reads plain lines,
 * each cut at {@linkcode MAX_LINE} characters.
 *
 * | key                        | while {@linkcode LineReader.read} waits | while a command runs     |
 * | -------------------------- | --------------------------------------- | ------------------------ |
 * | Ctrl+C                     | clears the line; on an empty line: end  | `onInterrupt()`          |
 * | Ctrl+D on an empty line    | end of input                            | end after the command    |
 * | Enter                      | the line                                | typed ahead (kept, ≤ 16) |
 *
 * @module
 */

import * as readline from "node:readline";
import process from "node:process";

/** Longest line kept from a pipe; the rest of it is a new line. */
export const MAX_LINE = 65536;

/** Most lines typed ahead while a command runs. */
const MAX_TYPEAHEAD = 16;

/** Options for {@linkcode LineReader.open}. */
export interface LineReaderOptions {
  /** Shown before each line on a terminal. @default {"> "} */
  prompt?: string;
  /** Ctrl+C pressed while no line is being read (a command runs). */
  onInterrupt?: () => void;
  /** Ends reading: a pending {@linkcode LineReader.read} resolves with `null`. */
  signal?: AbortSignal;
  /** Lines kept for up-arrow recall. @default {500} */
  historySize?: number;
  /** Use line editing (raw mode). @default {Deno.stdin.isTerminal()} */
  terminal?: boolean;
}

/** Reads lines from stdin; see the module doc. Dispose (or {@linkcode close}) to restore the terminal. */
export class LineReader implements Disposable {
  readonly #rl: readline.Interface | undefined;
  readonly #out: { write(text: string): unknown } | undefined;
  readonly #pipe: AsyncIterator<string> | undefined;
  readonly #options: LineReaderOptions;
  #queue: string[] = [];
  #waiter: ((line: string | null) => void) | undefined;
  #ended = false;
  #closed = false;
  readonly #onAbort = () => this.#end();

  private constructor(options: LineReaderOptions, terminal: boolean) {
    this.#options = options;
    if (terminal) {
      // On a terminal the prompt and echo go where the user looks: stdout, or stderr when
      // stdout is redirected (so a file gets only the commands' output).
      const output = Deno.stdout.isTerminal() ? process.stdout : process.stderr;
      const rl = readline.createInterface({
        input: process.stdin,
        output,
        terminal: true,
        prompt: options.prompt ?? "> ",
        historySize: options.historySize ?? 500,
        removeHistoryDuplicates: true,
      });
      rl.on("line", (line: string) => this.#push(line));
      rl.on("SIGINT", () => this.#interrupt());
      rl.on("close", () => this.#end());
      this.#rl = rl;
      this.#out = output;
    } else {
      this.#out = undefined;
      this.#pipe = Deno.stdin.readable
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(new LineSplitter(MAX_LINE))[Symbol.asyncIterator]();
    }
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
    if (options.signal?.aborted) this.#end();
  }

  /** Starts reading stdin (a terminal gets line editing). */
  static open(options: LineReaderOptions = {}): LineReader {
    return new LineReader(options, options.terminal ?? Deno.stdin.isTerminal());
  }

  /** Whether lines are edited on a terminal (prompt, history, Ctrl+C as a key). */
  get terminal(): boolean {
    return this.#rl !== undefined;
  }

  /**
   * The next line (without its newline), prompting for it on a terminal; `null` at the end of
   * input: Ctrl+D, Ctrl+C on an empty line, end of the pipe, or the signal.
   */
  read(): Promise<string | null> {
    const typed = this.#queue.shift();
    if (typed !== undefined) return Promise.resolve(typed);
    if (this.#ended) return Promise.resolve(null);
    if (this.#pipe) return this.#readPipe(this.#pipe);
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.#rl!.prompt();
    });
  }

  async #readPipe(pipe: AsyncIterator<string>): Promise<string | null> {
    const ended = new Promise<null>((resolve) => (this.#waiter = () => resolve(null)));
    try {
      const next = await Promise.race([pipe.next(), ended]);
      if (next === null || next.done) {
        this.#ended = true;
        return null;
      }
      return next.value;
    } finally {
      this.#waiter = undefined;
    }
  }

  #push(line: string): void {
    if (this.#waiter) {
      const resolve = this.#waiter;
      this.#waiter = undefined;
      resolve(line);
    } else if (this.#queue.length < MAX_TYPEAHEAD) {
      this.#queue.push(line);
    }
  }

  #interrupt(): void {
    const rl = this.#rl!;
    if (!this.#waiter) {
      this.#options.onInterrupt?.();
      return;
    }
    if (rl.line === "") {
      this.#out?.write("\n");
      this.#end();
      return;
    }
    // Like a shell: show ^C, forget the line, ask again.
    this.#out?.write("^C\n");
    rl.write(null, { ctrl: true, name: "e" });
    rl.write(null, { ctrl: true, name: "u" });
    rl.prompt();
  }

  #end(): void {
    this.#ended = true;
    const resolve = this.#waiter;
    this.#waiter = undefined;
    resolve?.(null);
  }

  /** Stops reading and restores the terminal. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    this.#end();
    this.#rl?.close();
    // Stop reading stdin, so the process can exit.
    if (this.#rl) process.stdin.pause();
    void this.#pipe?.return?.().catch(() => {});
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Splits text into lines; a line longer than `max` characters is cut there. */
class LineSplitter extends TransformStream<string, string> {
  constructor(max: number) {
    let buf = "";
    super({
      transform(chunk, controller) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          controller.enqueue(buf.slice(0, i).replace(/\r$/, ""));
          buf = buf.slice(i + 1);
        }
        while (buf.length > max) {
          controller.enqueue(buf.slice(0, max));
          buf = buf.slice(max);
        }
      },
      flush(controller) {
        if (buf) controller.enqueue(buf);
      },
    });
  }
}
