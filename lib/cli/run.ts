/**
 * The lifetime of a tool's process: an AbortSignal that SIGINT/SIGTERM abort, errors turned
 * into `error: <message>` and an exit status, never a stack trace unless `--verbose`.
 *
 * One Ctrl+C usually arrives twice: from the terminal (to the whole foreground process group)
 * and forwarded by `deno task`, within a millisecond of each other. Signals within
 * {@linkcode SIGNAL_GRACE_MS} of the first count as the same Ctrl+C and start the clean stop;
 * a later one is a deliberate second Ctrl+C and exits at once with status 130.
 *
 * @module
 */

import { ListenError } from "../net/listen_error.ts";
import { ExitCode, exitCodeOf, listenFix, UsageError } from "./errors.ts";
import { type CommandSpec, renderHelp } from "./flags.ts";
import { Output } from "./output.ts";

/** A tool's entry point: resolves to its exit status. */
export type Main = (args: string[], signal: AbortSignal) => Promise<number>;

/** Signals this soon after the first one are the same Ctrl+C delivered twice. */
export const SIGNAL_GRACE_MS = 300;

/**
 * Pause before `Deno.exit`: closed TLS connections send their close_notify from the event
 * loop, and exiting in the same turn drops it (clients then see an unexpected EOF).
 */
const EXIT_SETTLE_MS = 10;

/** What to do with one SIGINT/SIGTERM: see {@linkcode Interrupts}. */
export type InterruptAction = "stop" | "ignore" | "force";

/**
 * Decides what each stop signal means: the first one stops cleanly, repeats within
 * `graceMs` of it are ignored (the same Ctrl+C, delivered by the terminal and by `deno task`),
 * any later one forces an immediate exit.
 */
export class Interrupts {
  readonly #graceMs: number;
  #first: number | undefined;

  /** @param graceMs how long repeats count as the same signal. @default {SIGNAL_GRACE_MS} */
  constructor(graceMs: number = SIGNAL_GRACE_MS) {
    this.#graceMs = graceMs;
  }

  /** Classifies a signal received at `now` (milliseconds on a monotonic clock). */
  next(now: number): InterruptAction {
    if (this.#first === undefined) {
      this.#first = now;
      return "stop";
    }
    return now - this.#first < this.#graceMs ? "ignore" : "force";
  }
}

/**
 * Runs `main` with the process arguments and exits with its status.
 * Used as `if (import.meta.main) await runMain(main, spec)` in every cmd file.
 */
export async function runMain(main: Main, spec: CommandSpec): Promise<never> {
  const controller = new AbortController();
  const interrupts = new Interrupts();
  const onSignal = () => {
    const action = interrupts.next(performance.now());
    if (action === "force") Deno.exit(ExitCode.INTERRUPTED);
    if (action === "stop") controller.abort(new DOMException("Interrupted", "AbortError"));
  };
  const sigs: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of sigs) Deno.addSignalListener(s, onSignal);
  let code: number;
  const verbose = Deno.args.includes("--verbose") || Deno.args.includes("-v");
  try {
    code = await main(Deno.args, controller.signal);
  } catch (error) {
    code = reportError(error, spec, new Output(verbose ? "verbose" : "normal"));
  }
  // Listeners stay: a signal now must not kill the process before it exits with `code`.
  await new Promise((resolve) => setTimeout(resolve, EXIT_SETTLE_MS));
  Deno.exit(code);
}

/** Prints `error` the way every tool does and returns the exit status it maps to. */
export function reportError(error: unknown, spec: CommandSpec, out: Output): number {
  if (error instanceof DOMException && error.name === "AbortError") {
    return ExitCode.INTERRUPTED;
  }
  let message = error instanceof Error ? error.message : String(error);
  // A server that cannot listen: say what to do (lib errors name the cause, not the flags).
  const listen = listenErrorIn(error);
  const fix = listen ? listenFix(listen.cause, spec.name) : undefined;
  if (fix !== undefined) message += ` (${fix})`;
  out.error(message);
  if (error instanceof UsageError) {
    out.info(
      `\n${renderHelp(spec).split("\n\nOptions:")[0]}\nRun '${spec.name} --help' for all options.`,
    );
  } else if (out.level === "verbose" && error instanceof Error && error.stack) {
    out.debug(error.stack);
  }
  return exitCodeOf(error);
}

/** The {@linkcode ListenError} in an error's cause chain, if any. */
function listenErrorIn(error: unknown): ListenError | undefined {
  for (let i = 0; i < 8 && error instanceof Error; i++, error = error.cause) {
    if (error instanceof ListenError) return error;
  }
  return undefined;
}
