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
    const have = await readJournal(`${partPath}.journal`, key);
    if (!have) return new Map();
    try {
      await Deno.lstat(partPath);
      return have;
    } catch {
      return new Map();
    }
  }

  /**
   * Opens `target.part` and its journal: resumes when the journal is for the same `key`
   * and the part file exists, otherwise starts both empty.
   */
  static async open(target: string, key: JournalKey): Promise<PartialFile> {
    const partPath = `${target}.part`;
    const have = await readJournal(`${partPath}.journal`, key);
    let partExists = true;
    try {
      await Deno.lstat(partPath);
    } catch {
      partExists = false;
    }
    const fresh = !have || !partExists;
    const partial = new PartialFile(partPath, fresh ? new Map() : have);
    partial.#file = await Deno.open(partPath, {
      read: false,
      write: true,
      create: true,
      truncate: fresh,
    });
    partial.#journal = await Deno.open(partial.journalPath, {
      write: true,
      create: true,
      append: !fresh,
      truncate: fresh,
    });
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
