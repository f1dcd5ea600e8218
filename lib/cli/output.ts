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
    // A status line is erased first (the next status call draws it again below).
    const erase = this.#statusShown ? "\r\x1b[K" : "";
    this.#statusShown = false;
    this.#raw(erase + prefix + text.replace(STDERR_UNSAFE, escapeChar) + "\n");
  }

  #raw(text: string): void {
    const bytes = this.#encoder.encode(text);
    let n = 0;
    while (n < bytes.length) n += Deno.stderr.writeSync(bytes.subarray(n));
  }

  #statusShown = false;
  #statusTerminal: boolean | undefined;

  /** Whether {@linkcode status} draws anything: stderr is a terminal and not `--quiet`. */
  get showsStatus(): boolean {
    this.#statusTerminal ??= Deno.stderr.isTerminal();
    return this.#statusTerminal && this.#level !== "quiet";
  }

  /**
   * A one-line status on a terminal, redrawn in place (`A 0:05 / 0:22  buffer 180 ms  lost 0`,
   * like mpv); nothing when stderr is not a terminal, or with `--quiet`. Other output erases it
   * first. Cut to the terminal's width so it never wraps.
   */
  status(text: string): void {
    if (!this.showsStatus) return;
    let columns = 0;
    try {
      columns = Deno.consoleSize().columns;
    } catch {
      // Not a console after all.
    }
    // A pty without a size (script, some CI runners) says 0: assume 80 columns.
    if (columns < 20) columns = 80;
    const line = text.replace(STDERR_UNSAFE, escapeChar).slice(0, columns - 1);
    this.#raw(`\r\x1b[K${line}`);
    this.#statusShown = true;
  }

  /** Erases the status line, if one is shown. */
  clearStatus(): void {
    if (!this.#statusShown) return;
    this.#statusShown = false;
    this.#raw("\r\x1b[K");
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
    this.clearStatus();
    const bytes = this.#encoder.encode(text.endsWith("\n") ? text : text + "\n");
    let n = 0;
    while (n < bytes.length) n += Deno.stdout.writeSync(bytes.subarray(n));
  }
}
