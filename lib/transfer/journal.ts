/**
 * The receiver's record of a partial file: `NAME.part` holds the bytes, `NAME.part.journal`
 * lists the chunks verified and durable. The journal is text (docs/PROTOCOL.md §10.5):
 *
 *     {"v":3,"size":N,"mtimeMs":T,"chunkSize":4194304,"id":"…"}   which file it belongs to
 *     C INDEX SHA256HEX STATEHEX   chunk INDEX arrived with this chained hash (the SHA-256 of
 *                            the file up to its end) and was fsynced before this line was
 *                            written; STATEHEX is the SHA-256 state after it, to go on from
 *     X INDEX                the chunk and every later one are being replaced
 *     S DEV:INO:SIZE:MTIME:CTIME:BTIME   a seal: the .part's stat (ns) after its last write
 *                            and fsync, written when a session stops cleanly
 *
 * A resume reads only the journal (about 150 bytes per 4 MiB) — never the partial file. The
 * verified chunks are always a prefix of the file (chunks arrive in order, each hash covers
 * all before it). When the last line is a seal that matches the `.part` as it is now (size,
 * mtime, ctime, inode, device), nothing has written to it since this receiver fsynced it, and
 * the chunk hashes of the journal stand for its bytes ({@linkcode PartialFile.sealed}).
 * Otherwise (the receiver died mid-session, or something else wrote to the file), the
 * receiver re-reads the `.part` once before the rename. A journal of an older version (whose
 * chunk hashes were of each chunk alone) starts the file over.
 *
 * @module
 */

import { DirectWriteError, DirectWriter } from "./direct_write.ts";
import { CHUNK_SIZE } from "./frames.ts";
import { UnsafeNameError } from "./names.ts";
import { statKey } from "./_statx.ts";

/** Which file a journal belongs to: a journal for another size or mtime is started anew. */
export interface JournalKey {
  size: number;
  mtimeMs: number;
  /** The sender's identity of its file (recorded, not compared: see PROTOCOL §10.5). */
  id?: string;
}

/** What a journal says about a partial file. */
export interface JournalState {
  /** Verified chunks, 0 to k−1: index → chained hash (hex). */
  have: Map<number, string>;
  /** The SHA-256 state after each verified chunk (hex; none after a file's last, partial
   * chunk). */
  states: Map<number, string>;
  /** The last line is a seal matching the `.part` on disk. */
  sealed: boolean;
}

/** Bytes written between two fsyncs (each followed by the journal lines of what it made
 * durable). */
export const SYNC_BYTES = 64 * 1024 * 1024;

const encoder = new TextEncoder();
/** errno: an argument the file system refuses (here: an O_DIRECT write it cannot do). */
const EINVAL = 22;

/** An open journal and its partial file. */
export class PartialFile {
  /** Verified chunks, 0 to k−1: index → chained hash (hex). */
  readonly have: Map<number, string>;
  /** The SHA-256 state after each verified chunk (hex). */
  readonly states: Map<number, string>;
  /** True when every chunk in {@linkcode have} was written and fsynced by this receiver and
   * nothing wrote to the `.part` since (a fresh file, or a resume whose seal matched). */
  readonly sealed: boolean;
  readonly partPath: string;
  readonly journalPath: string;
  #file: Deno.FsFile | undefined;
  #journal: Deno.FsFile | undefined;
  /** A second descriptor of the `.part`: fdatasync on it flushes what `#file` wrote, while
   * `#file` goes on writing. */
  #syncer: Deno.FsFile | undefined;
  /** An O_DIRECT descriptor of the `.part` for the aligned bulk of each chunk (null where the
   * system has none): the page cache copy costs more than the hashing. */
  #direct: DirectWriter | null = null;
  /** Where `#file`'s own offset is (the direct writes do not move it). */
  #position = 0;
  /** Chunks written but not yet known to be on disk: index, hash, state after it. */
  #unsynced: [number, string, string | null][] = [];
  #unsyncedBytes = 0;
  /** fsyncs and journal appends, in order. */
  #chain: Promise<void> = Promise.resolve();
  #failed: Error | undefined;

  private constructor(partPath: string, state: JournalState) {
    this.partPath = partPath;
    this.journalPath = `${partPath}.journal`;
    this.have = state.have;
    this.states = state.states;
    this.sealed = state.sealed;
  }

  /** The verified chunks a resume would keep (empty when there is nothing to resume). */
  static async peek(target: string, key: JournalKey): Promise<JournalState> {
    const partPath = `${target}.part`;
    const partInfo = await regularOrMissing(partPath);
    await regularOrMissing(`${partPath}.journal`);
    const state = partInfo ? await readJournal(`${partPath}.journal`, key, partInfo) : null;
    return state ?? { have: new Map(), states: new Map(), sealed: true };
  }

  /**
   * Opens `target.part` and its journal: resumes when the journal is for the same `key`
   * and the part file exists, otherwise starts both empty.
   */
  static async open(target: string, key: JournalKey): Promise<PartialFile> {
    const partPath = `${target}.part`;
    const journalPath = `${partPath}.journal`;
    const journalInfo = await regularOrMissing(journalPath);
    const partInfo = await regularOrMissing(partPath);
    const state = journalInfo && partInfo ? await readJournal(journalPath, key, partInfo) : null;
    const fresh = !state;
    const partial = new PartialFile(
      partPath,
      state ?? { have: new Map(), states: new Map(), sealed: true },
    );
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
        sameFile(partInfo!, await partial.#file.stat(), partPath);
        sameFile(journalInfo!, await partial.#journal.stat(), journalPath);
      }
      partial.#syncer = await Deno.open(partPath, { read: true });
      const opened = await partial.#file.stat();
      sameFile(opened, await partial.#syncer.stat(), partPath);
      partial.#direct = await DirectWriter.open(partPath, opened);
    } catch (error) {
      partial.close();
      if (error instanceof UnsafeNameError) throw error;
      throw new UnsafeNameError(
        `${partPath}: cannot be opened safely (${(error as Error).message})`,
      );
    }
    if (fresh) {
      const header = JSON.stringify({ v: JOURNAL_VERSION, ...key, chunkSize: CHUNK_SIZE });
      await writeAll(partial.#journal!, encoder.encode(`${header}\n`));
    }
    return partial;
  }

  /**
   * Forgets chunk `index` and every later one (the sender sends them again: its file differs
   * from there on), marking them replaced (`X`) in the journal.
   */
  replaceFrom(index: number): void {
    let dropped = false;
    for (const i of [...this.have.keys()]) {
      if (i >= index) {
        this.have.delete(i);
        this.states.delete(i);
        dropped = true;
      }
    }
    if (dropped) this.#append(`X ${index}\n`);
  }

  /**
   * Writes a verified chunk's bytes. Its journal line follows once an fsync covered it
   * (every {@linkcode SYNC_BYTES}, on a second descriptor while writing goes on, and at the
   * end). `stateHex`: the SHA-256 state after the chunk (null after a partial last chunk).
   */
  async writeChunk(
    index: number,
    bytes: Uint8Array,
    sha256Hex: string,
    stateHex: string | null,
  ): Promise<void> {
    if (this.#failed) throw this.#failed;
    const file = this.#file!;
    const offset = index * CHUNK_SIZE;
    let direct = 0;
    if (this.#direct) {
      try {
        direct = await this.#direct.writeAligned(bytes, offset);
      } catch (error) {
        // EINVAL: this file system takes O_DIRECT opens but not these writes; buffered it is.
        if (!(error instanceof DirectWriteError) || error.errno !== EINVAL) throw error;
        this.#direct.close();
        this.#direct = null;
      }
    }
    if (direct < bytes.length) {
      const at = offset + direct;
      if (at !== this.#position) await file.seek(at, Deno.SeekMode.Start);
      await writeAll(file, bytes.subarray(direct));
      this.#position = offset + bytes.length;
    }
    this.#unsynced.push([index, sha256Hex, stateHex]);
    this.#unsyncedBytes += bytes.length;
    if (this.#unsyncedBytes >= SYNC_BYTES) this.#syncBatch();
  }

  /** Starts an fsync of what was written so far; its chunks are journaled after it. */
  #syncBatch(): Promise<void> {
    const batch = this.#unsynced;
    this.#unsynced = [];
    this.#unsyncedBytes = 0;
    const syncer = this.#syncer!;
    const journal = this.#journal!;
    this.#chain = this.#chain.then(async () => {
      await syncer.syncData();
      for (const [index, hex, state] of batch) {
        this.have.set(index, hex);
        if (state !== null) this.states.set(index, state);
      }
      if (batch.length > 0) {
        const lines = batch.map(([i, h, state]) => `C ${i} ${h}${state ? ` ${state}` : ""}\n`);
        await writeAll(journal, encoder.encode(lines.join("")));
      }
    }).catch((error) => {
      this.#failed ??= error;
    });
    return this.#chain;
  }

  #append(line: string): void {
    const journal = this.#journal!;
    this.#chain = this.#chain.then(() => writeAll(journal, encoder.encode(line))).catch(
      (error) => {
        this.#failed ??= error;
      },
    );
  }

  /** Waits for the journal: every chunk written is on disk and journaled. */
  async flush(): Promise<void> {
    await this.#syncBatch();
    if (this.#failed) throw this.#failed;
  }

  /** Makes the part file durable (all chunks fsynced) and closes both files. */
  async finish(): Promise<void> {
    try {
      await this.flush();
      await this.#file?.syncData();
    } finally {
      this.close();
    }
  }

  /**
   * A session stops cleanly (the connection was lost, the sender stopped): everything
   * written is fsynced and journaled, then sealed with the `.part`'s fstat, so that a
   * resume may trust the journal without reading the file.
   */
  async suspend(): Promise<void> {
    try {
      await this.flush();
      const info = await this.#file!.stat();
      await writeAll(this.#journal!, encoder.encode(`${sealLine(this.partPath, info)}\n`));
    } catch {
      // Not sealed: a resume re-reads the .part once (never trusts it unsealed).
    } finally {
      this.close();
    }
  }

  /** Closes both files (idempotent). */
  close(): void {
    this.#direct?.close();
    this.#direct = null;
    for (const f of [this.#file, this.#journal, this.#syncer]) {
      try {
        f?.close();
      } catch {
        // closed
      }
    }
    this.#file = this.#journal = this.#syncer = undefined;
  }

  /** Closes and deletes the part file and the journal. */
  async discard(): Promise<void> {
    await this.#chain;
    this.close();
    await Deno.remove(this.partPath).catch(() => {});
    await Deno.remove(this.journalPath).catch(() => {});
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/** `S DEV:INO:SIZE:MTIME:CTIME:BTIME` of the file at `path` (times in ns where statx(2) is
 * available, else as precise as the runtime's stat). */
function sealLine(path: string, info: Deno.FileInfo): string {
  return `S ${statKey(path, info)}`;
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

/** The journal's first line's `v`: chained chunk hashes with states. */
export const JOURNAL_VERSION = 3;

/** Reads a journal for `key`; null when it is missing, unreadable or for another file. */
async function readJournal(
  path: string,
  key: JournalKey,
  part: Deno.FileInfo,
): Promise<JournalState | null> {
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
      header.v !== JOURNAL_VERSION || header.size !== key.size ||
      header.mtimeMs !== key.mtimeMs || header.chunkSize !== CHUNK_SIZE
    ) return null;
  } catch {
    return null;
  }
  const have = new Map<number, string>();
  const states = new Map<number, string>();
  let lastSeal: string | undefined;
  for (const line of lines.slice(1)) {
    const m = /^(?:C (\d+) ([0-9a-f]{64})(?: ([0-9a-f]{80}))?|X (\d+))$/.exec(line);
    if (m) {
      lastSeal = undefined;
      if (m[4] !== undefined) {
        const from = Number(m[4]);
        for (const i of [...have.keys()]) {
          if (i >= from) {
            have.delete(i);
            states.delete(i);
          }
        }
      } else {
        have.set(Number(m[1]), m[2]!);
        if (m[3] !== undefined) states.set(Number(m[1]), m[3]);
      }
    } else if (/^S [0-9,:]+$/.test(line)) {
      lastSeal = line;
    }
    // Anything else (a line torn by a crash) is ignored: its chunk is sent again.
  }
  // Only a prefix counts, and chunk i can follow chunk i−1 only from its saved state: the
  // verified chunks are 0 … k−1 where each but the file's last has its state.
  const chunks = Math.max(1, Math.ceil(key.size / CHUNK_SIZE));
  let k = 0;
  while (have.has(k) && (states.has(k) || k === chunks - 1)) k++;
  for (const i of [...have.keys()]) if (i >= k) have.delete(i);
  for (const i of [...states.keys()]) if (i >= k) states.delete(i);
  return {
    have,
    states,
    sealed: lastSeal !== undefined &&
      lastSeal === sealLine(path.slice(0, -".journal".length), part),
  };
}
