/**
 * Server-Sent Events for the page (`/events`): each client gets the status once on connecting,
 * then whenever it is published. A client holds at most one event waiting (the newest replaces
 * an older one not yet written), so a slow reader costs one status document, not a backlog.
 *
 * @module
 */

import type { HttpConn } from "./http.ts";

/** One `text/event-stream` client. */
export class SseClient {
  readonly #conn: HttpConn;
  #next: Uint8Array | undefined;
  #writing = false;
  #closed = false;
  #done!: () => void;
  /** Resolves when the client is gone (its connection is closed then). */
  readonly finished: Promise<void>;

  /** Watches `conn` (the response head already written) for the peer leaving. */
  constructor(conn: HttpConn) {
    this.#conn = conn;
    this.finished = new Promise((resolve) => this.#done = resolve);
    void (async () => {
      const sink = new Uint8Array(512);
      try {
        while (!this.#closed && (await conn.read(sink)) !== null) { /* discard */ }
      } catch { /* closed */ }
      this.close();
    })();
  }

  /** Sends `data` (one JSON document) as the next event; replaces one still waiting. */
  send(data: string): void {
    if (this.#closed) return;
    this.#next = new TextEncoder().encode(`data: ${data}\n\n`);
    if (!this.#writing) void this.#flush();
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
    this.#done();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (!this.#closed && this.#next) {
        const bytes = this.#next;
        this.#next = undefined;
        await this.#conn.write(bytes);
      }
    } catch {
      this.close();
    } finally {
      this.#writing = false;
    }
  }
}
