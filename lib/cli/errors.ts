/**
 * Errors with a meaning for the command line: each carries the exit status a tool ends with.
 *
 * @module
 */

/** Exit statuses shared by every tool (documented in README and `--help`). */
export const ExitCode = {
  /** Finished (a server stopped by SIGINT/SIGTERM also exits 0). */
  OK: 0,
  /** Something failed: network, file, decoding, a peer's error. */
  ERROR: 1,
  /** The command line was wrong. */
  USAGE: 2,
  /** The peer refused: song not found, server full, request rejected. */
  REFUSED: 3,
  /** A client interrupted before it finished (SIGINT). */
  INTERRUPTED: 130,
} as const;

/** A bad command line: the tool prints the message and its usage, and exits 2. */
export class UsageError extends Error {
  /** Exit status for this error. */
  readonly exitCode: number = ExitCode.USAGE;
  /** Creates the error; `message` is user-facing. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The exit status an error asks for: its numeric `exitCode`, or 1. */
export function exitCodeOf(error: unknown): number {
  const code = (error as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === "number" && Number.isInteger(code) ? code : ExitCode.ERROR;
}

/**
 * What a user can do when a server cannot listen, by cause (`Deno.errors.AddrInUse`, …), or
 * undefined for other causes. `tool` names the server, e.g. `udp-server`.
 */
export function listenFix(cause: unknown, tool: string): string | undefined {
  if (cause instanceof Deno.errors.AddrInUse) {
    return `is another ${tool} running? Stop it, or choose another --port; --port 0 takes ` +
      "any free one";
  }
  if (cause instanceof Deno.errors.AddrNotAvailable) {
    return "--host must be an address of this machine, e.g. 127.0.0.1, or 0.0.0.0 for all";
  }
  if (cause instanceof Deno.errors.PermissionDenied) {
    return "ports below 1024 need privileges: choose a --port above 1023";
  }
  return undefined;
}
