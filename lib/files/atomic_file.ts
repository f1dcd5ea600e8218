/**
 * Saving a download so that the destination only ever holds a complete, verified file: bytes
 * go to a temporary file in the same folder (so the final rename is atomic, same filesystem),
 * are hashed on the way, and the temporary file is renamed into place only if the SHA-256
 * matches what the server announced. Otherwise it is removed.
 *
 * @module
 */

import { basename, dirname, join } from "@std/path";
import { digestsEqual, Sha256 } from "../hash/sha256.ts";

/** The received bytes do not have the announced SHA-256. */
export class HashMismatchError extends Error {
  /**
   * The error for `path`.
   *
   * @param path destination
   * @param expected the announced SHA-256 (hex)
   * @param actual the computed one
   */
  constructor(path: string, expected: string, actual: string) {
    super(
      `Not saving "${path}": SHA-256 mismatch (server said ${expected.slice(0, 16)}…, ` +
        `received ${actual.slice(0, 16)}…)`,
    );
    this.name = "HashMismatchError";
  }
}

/** A file being written atomically. Dispose without {@linkcode commit} to discard it. */
export class AtomicFile implements AsyncDisposable {
  /** Final path. */
  readonly path: string;
  readonly #tmp: string;
  readonly #file: Deno.FsFile;
  readonly #hash = new Sha256();
  #done = false;

  private constructor(path: string, tmp: string, file: Deno.FsFile) {
    this.path = path;
    this.#tmp = tmp;
    this.#file = file;
  }

  /** Creates the temporary file next to `path`. */
  static async create(path: string): Promise<AtomicFile> {
    const dir = dirname(path);
    const tmp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.part`);
    try {
      const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
      return new AtomicFile(path, tmp, file);
    } catch (cause) {
      throw new Error(`Cannot save to "${path}": ${(cause as Error).message}`, { cause });
    }
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#hash.bytes;
  }

  /** Appends bytes. */
  async write(bytes: Uint8Array): Promise<void> {
    this.#hash.update(bytes);
    let at = 0;
    while (at < bytes.length) at += await this.#file.write(bytes.subarray(at));
  }

  /**
   * Checks the hash and renames into place.
   *
   * @throws {HashMismatchError} (the temporary file is removed).
   */
  async commit(expectedSha256: string): Promise<string> {
    const actual = this.#hash.digestHex();
    this.#done = true;
    await this.#file.syncData().catch(() => {});
    this.#file.close();
    if (!digestsEqual(actual, expectedSha256)) {
      await Deno.remove(this.#tmp).catch(() => {});
      throw new HashMismatchError(this.path, expectedSha256, actual);
    }
    await Deno.rename(this.#tmp, this.path);
    return actual;
  }

  /** Discards the temporary file unless committed. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#file.close();
    } catch { /* closed */ }
    await Deno.remove(this.#tmp).catch(() => {});
  }
}
