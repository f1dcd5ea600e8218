/**
 * The first lines of every tool's `main`: parse the command line, set up output at the chosen
 * verbosity, and answer `--help`.
 *
 * @module
 */

import {
  type CommandSpec,
  type FlagSpec,
  parseCommandLine,
  type ParsedCommandLine,
  renderHelp,
} from "./flags.ts";
import { Output, verbosityOf } from "./output.ts";

/** What {@linkcode startCommand} returns. */
export interface StartedCommand<F extends Record<string, FlagSpec>> extends ParsedCommandLine<F> {
  /** Human output at the verbosity the flags chose. */
  out: Output;
  /** True when `--help` was printed: `main` returns 0 at once. */
  helped: boolean;
}

/**
 * Parses `args` against `spec` and prints help when asked.
 *
 * @throws {UsageError} for a bad command line (runMain prints it with the usage).
 */
export function startCommand<F extends Record<string, FlagSpec>>(
  spec: CommandSpec & { flags: F },
  args: string[],
): StartedCommand<F> {
  const parsed = parseCommandLine(spec, args);
  // The common flags are always there; TypeScript cannot see through the generic F here.
  const common = parsed.flags as unknown as { help: boolean; quiet: boolean; verbose: boolean };
  const out = new Output(verbosityOf(common));
  if (common.help) out.stdout(renderHelp(spec));
  return { ...parsed, out, helped: common.help };
}
