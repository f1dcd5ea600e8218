/**
 * What `file-send receive` checks before it shows the code: the folder exists and can be
 * written into. A small module of its own (no TLS, no PAKE), so that the command can run it
 * and print the code before the heavy modules load.
 *
 * @module
 */

import { join } from "@std/path";
import { TransferError } from "./errors.ts";

/** Default TCP port of `file-send receive`. */
export const DEFAULT_FILE_SEND_PORT = 9009;

/**
 * The real path of `dir`, once a probe file could be made in it.
 *
 * @throws {TransferError} `Cannot receive into DIR: …` or `Cannot write into DIR: …`.
 */
export async function checkReceiveDir(dir: string): Promise<string> {
  const real = await Deno.realPath(dir).catch((cause) => {
    throw new TransferError(`Cannot receive into ${dir}: ${cause.message}`, { cause });
  });
  const probe = join(real, `.file-send-probe-${crypto.randomUUID()}`);
  try {
    await Deno.writeFile(probe, new Uint8Array(), { createNew: true });
    await Deno.remove(probe);
  } catch (cause) {
    throw new TransferError(`Cannot write into ${real}: ${(cause as Error).message}`, { cause });
  }
  return real;
}
