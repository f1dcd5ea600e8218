/**
 * file-send's chunk hashes (docs/PROTOCOL.md §10.5): chunk i's hash is the SHA-256 of the
 * file's bytes from its start to the end of chunk i, so the last chunk's hash is the file's
 * SHA-256 (`sha256sum`'s value), and one pass over the bytes gives them all. The manifest root
 * is the SHA-256 of the concatenated 32-byte chunk hashes. An empty file has one chunk, of no
 * bytes.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { ChainedSha256 } from "../hash/chained.ts";
import { CHUNK_SIZE } from "./frames.ts";

/** Chunks of a file of `size` bytes (at least one). */
export function chunkCount(size: number): number {
  return Math.max(1, Math.ceil(size / CHUNK_SIZE));
}

/** Bytes of chunk `index` of a file of `size` bytes. */
export function chunkLength(size: number, index: number): number {
  return Math.max(0, Math.min(CHUNK_SIZE, size - index * CHUNK_SIZE));
}

/** The manifest root over chunk hashes (hex, in chunk order). */
export function manifestRoot(hashes: readonly string[]): string {
  const root = createHash("sha256");
  for (const hex of hashes) root.update(Buffer.from(hex, "hex"));
  return root.digest("hex");
}

/** A file's chunk hashes as read from disk. */
export interface FileChain {
  /** Chained hash of each chunk read (hex). */
  hashes: string[];
  /** Bytes read. */
  bytesRead: number;
}

/**
 * Reads the first `size` bytes of the file at `path` once, in chunks, and returns each chunk's
 * chained hash. Stops early (fewer hashes) when the file is shorter. `onChunk` runs after each.
 */
export async function hashFileChain(
  path: string,
  size: number,
  onChunk?: () => Promise<void>,
): Promise<FileChain> {
  using file = await Deno.open(path, { read: true });
  const hash = ChainedSha256.fresh();
  const hashes: string[] = [];
  const buffer = new Uint8Array(Math.min(CHUNK_SIZE, Math.max(size, 1)));
  let bytesRead = 0;
  for (let c = 0; c < chunkCount(size); c++) {
    const part = buffer.subarray(0, chunkLength(size, c));
    let got = 0;
    while (got < part.length) {
      const n = await file.read(part.subarray(got));
      if (n === null) break;
      got += n;
    }
    bytesRead += got;
    if (got < part.length) break; // shorter than it should be: the chunk count tells
    hashes.push(Buffer.from(await hash.update(part)).toString("hex"));
    await onChunk?.();
  }
  return { hashes, bytesRead };
}

/** The manifest root of the first `size` bytes of a file (read once); null when the file is
 * shorter than that. */
export async function fileManifestRoot(path: string, size: number): Promise<string | null> {
  const chain = await hashFileChain(path, size);
  return chain.hashes.length === chunkCount(size) ? manifestRoot(chain.hashes) : null;
}
