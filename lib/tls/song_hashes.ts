/**
 * SHA-256 of each song file, computed once (streaming, 1 MiB blocks) and shared by every
 * download of that song. Concurrent first requests wait for the same computation.
 *
 * @module
 */

import { sha256File } from "../hash/sha256.ts";
import type { Song } from "../songs/catalog.ts";

/** A per-song cache of file hashes, keyed by path, size and modification time. */
export class SongHashes {
  readonly #cache = new Map<string, Promise<string>>();

  /** The song's SHA-256 (lowercase hex); reads the file the first time only. */
  async get(song: Song, signal?: AbortSignal): Promise<string> {
    const stat = await Deno.stat(song.path);
    // A file replaced in place gets a new key, so a stale hash is never sent.
    const key = `${song.path}\0${stat.size}\0${stat.mtime?.getTime() ?? 0}`;
    let pending = this.#cache.get(key);
    if (!pending) {
      pending = sha256File(song.path, { signal });
      this.#cache.set(key, pending);
      pending.catch(() => this.#cache.delete(key));
    }
    return await pending;
  }

  /** Hashes every song in the background (errors are left for the request that needs it). */
  warm(songs: readonly Song[], signal?: AbortSignal): Promise<void> {
    return (async () => {
      for (const song of songs) {
        if (signal?.aborted) return;
        await this.get(song, signal).catch(() => {});
      }
    })();
  }
}
