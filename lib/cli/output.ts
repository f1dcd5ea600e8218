/**
 * What a tool prints for people, on stderr, at the level `--quiet` / `--verbose` chose;
 * stdout stays free for data (raw PCM with `--output -`, JSON with `--stats-json`).
 * Colour only on a terminal and never with NO_COLOR (via `@std/fmt/colors`).
 *
 * @module
 */

import { bold, red, yellow } from "@std/fmt/colors";

/** How much a tool says. */
export type Verbosity = "quiet" | "normal" | "verbose";

/** Picks the verbosity from the common flags. */
export function verbosityOf(flags: { quiet?: boolean; verbose?: boolean }): Verbosity {
  return flags.quiet ? "quiet" : flags.verbose ? "verbose" : "normal";
}

/** Human-facing printer for a tool. */
export class Output {
  readonly #level: Verbosity;
  readonly #color: boolean;
  #encoder = new TextEncoder();

  /** @param level what to print; @param color whether stderr may be coloured. */
  constructor(level: Verbosity = "normal", color = Deno.stderr.isTerminal() && !Deno.noColor) {
    this.#level = level;
    this.#color = color;
  }

  /** The verbosity in force. */
  get level(): Verbosity {
    return this.#level;
  }

  #write(text: string): void {
    const bytes = this.#encoder.encode(text + "\n");
    let n = 0;
    while (n < bytes.length) n += Deno.stderr.writeSync(bytes.subarray(n));
  }

  /** Normal progress and results. */
  info(text: string): void {
    if (this.#level !== "quiet") this.#write(text);
  }

  /** Detail shown only with `--verbose`. */
  debug(text: string): void {
    if (this.#level === "verbose") this.#write(text);
  }

  /** A warning: printed unless `--quiet`. */
  warn(text: string): void {
    if (this.#level !== "quiet") {
      this.#write(this.#color ? `${bold(yellow("warning"))}: ${text}` : `warning: ${text}`);
    }
  }

  /** An error: always printed, as `error: <message>`. */
  error(text: string): void {
    this.#write(this.#color ? `${bold(red("error"))}: ${text}` : `error: ${text}`);
  }

  /** Writes `text` to stdout (data, not commentary). */
  stdout(text: string): void {
    const bytes = this.#encoder.encode(text.endsWith("\n") ? text : text + "\n");
    let n = 0;
    while (n < bytes.length) n += Deno.stdout.writeSync(bytes.subarray(n));
  }
}
