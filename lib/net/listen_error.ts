/**
 * A server that cannot take its address: one error type for TCP and UDP, so the command layer
 * can add what to do about it (another --port, another --host) to exactly these errors and no
 * others.
 *
 * @module
 */

/** Binding or listening on an address failed; `cause` is the system error. */
export class ListenError extends Error {
  override name = "ListenError";

  /**
   * @param what what was attempted, e.g. `listen on 127.0.0.1:8443`, `bind UDP 127.0.0.1:9000`
   * @param cause the error `Deno.listen` / `Deno.listenDatagram` threw
   */
  constructor(what: string, cause: unknown) {
    super(`Cannot ${what}: ${listenReason(cause)}`, { cause });
  }
}

function listenReason(cause: unknown): string {
  if (cause instanceof Deno.errors.AddrInUse) return "address in use";
  if (cause instanceof Deno.errors.AddrNotAvailable) return "address not available on this machine";
  if (cause instanceof Deno.errors.PermissionDenied) return "permission denied";
  return cause instanceof Error ? cause.message : String(cause);
}
