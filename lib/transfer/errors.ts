/**
 * Errors of a transfer, each with a user-facing message and the exit status the command ends
 * with (`exitCode`, read by lib/cli's runMain).
 *
 * @module
 */

import { ExitCode } from "../cli/errors.ts";

/** A transfer failed (network, disk, integrity). Exit 1. */
export class TransferError extends Error {
  override name = "TransferError";
  readonly exitCode: number = ExitCode.ERROR;
}

/** The code did not match (or a relay in the middle changed the TLS certificate). Exit 1. */
export class WrongCodeError extends TransferError {
  override name = "WrongCodeError";
}

/** The receiver refused the offer (size, free space, names, the user). Exit 3. */
export class TransferRefused extends TransferError {
  override name = "TransferRefused";
  override readonly exitCode: number = ExitCode.REFUSED;
}

/** A file's bytes did not match its hash; its partial file was deleted. Exit 1. */
export class IntegrityError extends TransferError {
  override name = "IntegrityError";
}
