/**
 * The receiver's record of a partial file: `NAME.part` holds the bytes, `NAME.part.journal`
 * lists the chunks already verified. The journal is text: a first line of JSON naming the
 * file it belongs to (`{"v":1,"size":…,"mtimeMs":…,"chunkSize":…}`), then one line
 * `INDEX SHA256HEX` per chunk, appended after the chunk's bytes were written. Resuming reads
 * only the journal (about 70 bytes per 4 MiB) — never the partial file.
 *
 * @module
 */

import { CHUNK_SIZE } from "./frames.ts";
import { UnsafeNameError } from "./names.ts";

/** Which file a journal belongs to: a journal for another size or mtime is started anew. */
export interface JournalKey {
  size: number;
  mtimeMs: number;
}

/** An open journal and its partial file. */
export class PartialFile {
  /** Verified chunks: index → SHA-256 (hex). */
  readonly have: Map<number, string>;
  readonly partPath: string;
  readonly journalPath: string;
  #file: Deno.FsFile | undefined;
  #journal: Deno.FsFile | undefined;
  #position = 0;

  private constructor(partPath: string, have: Map<number, string>) {
    this.partPath = partPath;
    this.journalPath = `${partPath}.journal`;
    this.have = have;
  }

  /** The verified chunks a resume would keep (empty when there is nothing to resume). */
  static async peek(target: string, key: JournalKey): Promise<Map<number, string>> {
    const partPath = `${target}.part`;
    await regularOrMissing(partPath);
    await regularOrMissing(`${partPath}.journal`);
    const have = await readJournal(`${partPath}.journal`, key);
    if (!have) return new Map();
    return (await regularOrMissing(partPath)) ? have : new Map();
  }

  /**
   * Opens `target.part` and its journal: resumes when the journal is for the same `key`
   * and the part file exists, otherwise starts both empty.
   */
  static async open(target: string, key: JournalKey): Promise<PartialFile> {
    const partPath = `${target}.part`;
    const journalPath = `${partPath}.journal`;
    const journalInfo = await regularOrMissing(journalPath);
    const have = journalInfo ? await readJournal(journalPath, key) : null;
    const partInfo = await regularOrMissing(partPath);
    const fresh = !have || !partInfo;
    const partial = new PartialFile(partPath, fresh ? new Map() : have);
    try {
      if (fresh) {
        // Made anew with O_EXCL, which never follows a link: a link planted at NAME.part or
        // NAME.part.journal after the check above makes the open fail instead of writing
        // through it.
        if (partInfo) await Deno.remove(partPath);
        if (journalInfo) await Deno.remove(journalPath);
        partial.#file = await Deno.open(partPath, { write: true, createNew: true });
        partial.#journal = await Deno.open(journalPath, { write: true, createNew: true });
      } else {
        // Resuming: the files opened must be the regular files seen by lstat (same device
        // and inode), not something a link swapped in since.
        partial.#file = await Deno.open(partPath, { write: true });
        partial.#journal = await Deno.open(journalPath, { write: true, append: true });
        sameFile(partInfo, await partial.#file.stat(), partPath);
        sameFile(journalInfo!, await partial.#journal.stat(), journalPath);
      }
    } catch (error) {
      partial.close();
      if (error instanceof UnsafeNameError) throw error;
      throw new UnsafeNameError(
        `${partPath}: cannot be opened safely (${(error as Error).message})`,
      );
    }
    if (fresh) {
      const header = JSON.stringify({ v: 1, ...key, chunkSize: CHUNK_SIZE });
      await partial.#journal.write(new TextEncoder().encode(`${header}\n`));
    }
    return partial;
  }

  /** Writes a verified chunk's bytes, then records it in the journal. */
  async writeChunk(index: number, bytes: Uint8Array, sha256Hex: string): Promise<void> {
    const file = this.#file!;
    const offset = index * CHUNK_SIZE;
    if (offset !== this.#position) await file.seek(offset, Deno.SeekMode.Start);
    let at = 0;
    while (at < bytes.length) at += await file.write(bytes.subarray(at));
    this.#position = offset + bytes.length;
    await this.#journal!.write(new TextEncoder().encode(`${index} ${sha256Hex}\n`));
    this.have.set(index, sha256Hex);
  }

  /** Flushes the part file to disk and closes both files. */
  async finish(): Promise<void> {
    await this.#file?.syncData();
    this.close();
  }

  /** Closes both files (idempotent). */
  close(): void {
    for (const f of [this.#file, this.#journal]) {
      try {
        f?.close();
      } catch {
        // closed
      }
    }
    this.#file = this.#journal = undefined;
  }

  /** Closes and deletes the part file and the journal. */
  async discard(): Promise<void> {
    this.close();
    await Deno.remove(this.partPath).catch(() => {});
    await Deno.remove(this.journalPath).catch(() => {});
  }
}

/**
 * The lstat of `path` when it is a regular file, null when it does not exist.
 *
 * @throws {UnsafeNameError} when it is a link, a folder or anything else.
 */
async function regularOrMissing(path: string): Promise<Deno.FileInfo | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  if (!info.isFile) {
    throw new UnsafeNameError(
      `${path} is ${info.isSymlink ? "a symbolic link" : "not a regular file"}`,
    );
  }
  return info;
}

function sameFile(seen: Deno.FileInfo, opened: Deno.FileInfo, path: string): void {
  if (seen.dev !== opened.dev || seen.ino !== opened.ino || !opened.isFile) {
    throw new UnsafeNameError(`${path} changed while it was being opened`);
  }
}

async function readJournal(path: string, key: JournalKey): Promise<Map<number, string> | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  const lines = text.split("\n");
  try {
    const header = JSON.parse(lines[0] ?? "");
    if (
      header.v !== 1 || header.size !== key.size || header.mtimeMs !== key.mtimeMs ||
      header.chunkSize !== CHUNK_SIZE
    ) return null;
  } catch {
    return null;
  }
  const have = new Map<number, string>();
  for (const line of lines.slice(1)) {
    const m = /^(\d+) ([0-9a-f]{64})$/.exec(line);
    if (m) have.set(Number(m[1]), m[2]!);
  }
  return have;
}
