/**
 * What a tool prints for people, on stderr, at the level `--quiet` / `--verbose` chose;
 * stdout stays free for data (raw PCM with `--output -`, JSON with `--stats-json`).
 * Colour only on a terminal and never with NO_COLOR (via `@std/fmt/colors`).
 *
 * @module
 */

import { bold, red, yellow } from "@std/fmt/colors";

// Characters that must never reach a terminal from a peer: C0 controls (ESC starts escape
// sequences; CR, BS and LF rewrite or fake lines), DEL, C1 controls (0x9B is a one-byte CSI),
// bidi overrides/isolates and line/paragraph separators (text that displays as something it
// is not), and lone surrogates.
/** The character-class body of what no peer text may bring to a terminal or a file name. */
export const PEER_UNSAFE_CHARS =
  "\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ud800-\\udfff";
const PEER_UNSAFE = new RegExp(`[${PEER_UNSAFE_CHARS}]`, "gu");
// The same, minus tab and newline: what this printer removes from anything it writes to
// stderr, as a second line of defence behind {@linkcode escapePeerText}.
// deno-lint-ignore no-control-regex
const STDERR_UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/gu;

function escapeChar(ch: string): string {
  const c = ch.codePointAt(0)!;
  return c <= 0xff ? `\\x${c.toString(16).padStart(2, "0")}` : `\\u{${c.toString(16)}}`;
}

/**
 * Text that came from a peer (song titles, server messages and reasons, error texts), made safe
 * to print: every control character, bidi override and line separator is shown as an escape
 * (`\x1b`, `\x0a`, `\u{202e}`), so a server cannot move the cursor, rewrite the screen, set
 * the window title or fake extra output lines. Every print of peer text goes through this.
 *
 * @example `escapePeerText("a\x1b[2Jb")` → `"a\\x1b[2Jb"` (printed as `a\x1b[2Jb`)
 */
export function escapePeerText(text: string): string {
  return String(text).replace(PEER_UNSAFE, escapeChar);
}

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

  /** Writes a line on stderr: `prefix` is ours (it may hold colour codes), `text` is filtered. */
  #write(text: string, prefix = ""): void {
    const bytes = this.#encoder.encode(prefix + text.replace(STDERR_UNSAFE, escapeChar) + "\n");
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

  /**
   * A warning: printed unless `--quiet`, or always with `always` (a security warning such as
   * `--insecure` must never be hidden).
   */
  warn(text: string, options: { always?: boolean } = {}): void {
    if (this.#level !== "quiet" || options.always) {
      this.#write(text, this.#color ? `${bold(yellow("warning"))}: ` : "warning: ");
    }
  }

  /** An error: always printed, as `error: <message>`. */
  error(text: string): void {
    this.#write(text, this.#color ? `${bold(red("error"))}: ` : "error: ");
  }

  /** Writes `text` to stdout (data, not commentary). */
  stdout(text: string): void {
    const bytes = this.#encoder.encode(text.endsWith("\n") ? text : text + "\n");
    let n = 0;
    while (n < bytes.length) n += Deno.stdout.writeSync(bytes.subarray(n));
  }
}
