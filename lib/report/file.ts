/**
 * The report file: opened (created or truncated) before the session starts, so a path that
 * cannot be written fails at once with one line, and written once at the end.
 *
 * @module
 */

/** The report file cannot be written. */
export class ReportFileError extends Error {
  override name = "ReportFileError";
}

/** An open report file; {@linkcode ReportFile.write} writes it and closes it. */
export class ReportFile implements Disposable {
  readonly path: string;
  readonly #file: Deno.FsFile;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /**
   * Creates or truncates `path`.
   * @throws {ReportFileError} it cannot be opened for writing
   */
  static async create(path: string): Promise<ReportFile> {
    try {
      return new ReportFile(
        path,
        await Deno.open(path, { write: true, create: true, truncate: true }),
      );
    } catch (cause) {
      throw new ReportFileError(
        `Cannot write the report to "${path}": ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  /** Writes `html` and closes the file. */
  async write(html: string): Promise<void> {
    const bytes = new TextEncoder().encode(html);
    let at = 0;
    try {
      while (at < bytes.length) at += await this.#file.write(bytes.subarray(at));
    } catch (cause) {
      throw new ReportFileError(
        `Cannot write the report to "${this.path}": ${(cause as Error).message}`,
        { cause },
      );
    } finally {
      this.close();
    }
  }

  /** Closes the file (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
