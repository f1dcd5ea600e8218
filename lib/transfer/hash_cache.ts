/**
 * The sender's own record of the chunk hashes it computed, so that a resume need not read
 * again the chunks the receiver already has (docs/PROTOCOL.md §10.5). One small text file per
 * file identity, `ID.chunks`, lines `INDEX SHA256HEX STATEHEX` (the chained hash up to the
 * chunk's end and the SHA-256 state after it, to go on from), appended as chunks are read;
 * deleted once the file was saved. The identity is a hash of what the file system says about the
 * file — device, inode, size, mtime, ctime, birth time (ns) — so a file that was written to
 * since (its ctime moves, and no program can set a ctime), replaced (another inode) or is
 * another copy has another identity, and its old hashes are never used for it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "@std/path";
import { statKey } from "./_statx.ts";

/** A file smaller than this many chunks is not cached: a resume reads it again (≤ 16 MiB). */
export const CACHE_MIN_CHUNKS = 4;

/**
 * The identity of the file at `path` as this machine's file system sees it (32 hex digits),
 * `info` being its stat (or fstat of the open file): device, inode, size, and mtime, ctime and
 * birth time in ns where statx(2) is available.
 */
export function fileIdentity(path: string, info: Deno.FileInfo): string {
  const key = `${statKey(path, info)}|${info.dev}:${info.ino ?? ""}`;
  return createHash("sha256").update(`file-send identity v1 ${key}`).digest("hex").slice(0, 32);
}

/** The default folder: `$XDG_CACHE_HOME/soundsock/file-send` (or `~/.cache/…`). */
export function defaultHashCacheDir(): string | null {
  const base = Deno.env.get("XDG_CACHE_HOME") ||
    (Deno.env.get("HOME") ? join(Deno.env.get("HOME")!, ".cache") : undefined);
  return base ? join(base, "soundsock", "file-send") : null;
}

/** What the cache knows of one chunk. */
export interface CachedChunk {
  /** The chained hash up to the chunk's end (hex). */
  hash: string;
  /** The SHA-256 state after the chunk (hex); absent after a file's last, partial chunk. */
  state?: string;
}

/** The chunk hashes of one file identity. Failures to write it only turn it off. */
export class ChunkHashCache {
  readonly #known: Map<number, CachedChunk>;
  readonly #path: string | null;
  #file: Deno.FsFile | undefined;

  private constructor(path: string | null, known: Map<number, CachedChunk>) {
    this.#path = path;
    this.#known = known;
  }

  /** A cache that records nothing. */
  static none(): ChunkHashCache {
    return new ChunkHashCache(null, new Map());
  }

  /** Opens (and reads, when `load`) the cache of identity `id` in `dir`. */
  static async open(dir: string | null, id: string, load: boolean): Promise<ChunkHashCache> {
    if (dir === null) return ChunkHashCache.none();
    const path = join(dir, `${id}.chunks`);
    const known = new Map<number, CachedChunk>();
    if (load) {
      const text = await Deno.readTextFile(path).catch(() => "");
      for (const line of text.split("\n")) {
        // Lines of the older format (`INDEX SHA256HEX`, hashes of each chunk alone) do not
        // match and are ignored.
        const m = /^(\d+) ([0-9a-f]{64}) ([0-9a-f]{80}|-)$/.exec(line);
        if (m) {
          known.set(Number(m[1]), m[3] === "-" ? { hash: m[2]! } : { hash: m[2]!, state: m[3]! });
        }
      }
    }
    const cache = new ChunkHashCache(path, known);
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      cache.#file = await Deno.open(path, { append: true, create: true, mode: 0o600 });
    } catch {
      // Not writable: nothing is recorded; a later resume reads what it needs.
    }
    return cache;
  }

  /** What this machine computed for chunk `index` of this identity, if anything. */
  get(index: number): CachedChunk | undefined {
    return this.#known.get(index);
  }

  /** Records a chunk's chained hash and the state after it, computed from the bytes read. */
  record(index: number, hash: string, state: string | null): void {
    if (!this.#file || this.#known.get(index)?.hash === hash) return;
    this.#known.set(index, state === null ? { hash } : { hash, state });
    try {
      const line = new TextEncoder().encode(`${index} ${hash} ${state ?? "-"}\n`);
      let at = 0;
      while (at < line.length) at += this.#file.writeSync(line.subarray(at));
    } catch {
      this.close();
    }
  }

  /** Closes the file (idempotent). */
  close(): void {
    try {
      this.#file?.close();
    } catch {
      // closed
    }
    this.#file = undefined;
  }

  /** Closes and deletes the cache (the file was saved: no resume will need it). */
  async remove(): Promise<void> {
    this.close();
    if (this.#path) await Deno.remove(this.#path).catch(() => {});
  }
}
