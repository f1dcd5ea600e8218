/**
 * The lifetime of a tool's process: an AbortSignal that SIGINT/SIGTERM abort (a second
 * Ctrl+C exits at once), errors turned into `error: <message>` and an exit status, never a
 * stack trace unless `--verbose`.
 *
 * @module
 */

import { ExitCode, exitCodeOf, UsageError } from "./errors.ts";
import { type CommandSpec, renderHelp } from "./flags.ts";
import { Output } from "./output.ts";

/** A tool's entry point: resolves to its exit status. */
export type Main = (args: string[], signal: AbortSignal) => Promise<number>;

/**
 * Runs `main` with the process arguments and exits with its status.
 * Used as `if (import.meta.main) await runMain(main, spec)` in every cmd file.
 */
export async function runMain(main: Main, spec: CommandSpec): Promise<never> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) Deno.exit(ExitCode.INTERRUPTED);
    controller.abort(new DOMException("Interrupted", "AbortError"));
  };
  const sigs: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of sigs) Deno.addSignalListener(s, onSignal);
  let code: number;
  const verbose = Deno.args.includes("--verbose") || Deno.args.includes("-v");
  try {
    code = await main(Deno.args, controller.signal);
  } catch (error) {
    code = reportError(error, spec, new Output(verbose ? "verbose" : "normal"));
  } finally {
    for (const s of sigs) Deno.removeSignalListener(s, onSignal);
  }
  Deno.exit(code);
}

/** Prints `error` the way every tool does and returns the exit status it maps to. */
export function reportError(error: unknown, spec: CommandSpec, out: Output): number {
  if (error instanceof DOMException && error.name === "AbortError") {
    return ExitCode.INTERRUPTED;
  }
  const message = error instanceof Error ? error.message : String(error);
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
