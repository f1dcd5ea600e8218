/**
 * The `--log FILE` event log: one JSON object per line, `{"ts":…, "event":…, …fields}`,
 * appended synchronously so the log is complete even if the process is killed right after.
 *
 * @module
 */

/** Fields of one event; values must be JSON-serialisable. */
export type EventFields = Record<string, unknown>;

/** Receives a tool's events. The null log ({@linkcode EventLog.none}) drops them. */
export class EventLog implements Disposable {
  #file: Deno.FsFile | undefined;
  #encoder = new TextEncoder();
  /** Events written so far. */
  count = 0;
  #observers: ((event: string, fields: EventFields) => void)[] = [];

  private constructor(file: Deno.FsFile | undefined) {
    this.#file = file;
  }

  /** Opens (creating or appending to) `path`. */
  static async open(path: string): Promise<EventLog> {
    try {
      return new EventLog(await Deno.open(path, { append: true, create: true, write: true }));
    } catch (cause) {
      throw new Error(`Cannot open log file "${path}": ${(cause as Error).message}`, { cause });
    }
  }

  /** A log that records nothing (no `--log` given). */
  static none(): EventLog {
    return new EventLog(undefined);
  }

  /** Opens `path` if given, else the null log. */
  static openOptional(path: string | undefined): Promise<EventLog> {
    return path === undefined ? Promise.resolve(EventLog.none()) : EventLog.open(path);
  }

  /** Whether events are being recorded. */
  get enabled(): boolean {
    return this.#file !== undefined;
  }

  /**
   * Also hands every event to `observer` (e.g. the servers' access log on stderr), whether or
   * not a file is recorded.
   */
  observe(observer: (event: string, fields: EventFields) => void): void {
    this.#observers.push(observer);
  }

  /** Records one event. */
  event(event: string, fields: EventFields = {}): void {
    for (const observe of this.#observers) observe(event, fields);
    if (!this.#file) return;
    const line = JSON.stringify({ ts: new Date().toISOString(), event, ...fields }) + "\n";
    const bytes = this.#encoder.encode(line);
    let written = 0;
    while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
    this.count++;
  }

  /** Closes the file; later events are dropped. Safe to call twice. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
