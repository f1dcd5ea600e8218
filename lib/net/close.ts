/**
 * Closing a socket, listener or file that may already be closed.
 *
 * @module
 */

/** Calls `resource.close()`, ignoring the error thrown when it is already closed. */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch { /* already closed */ }
}
