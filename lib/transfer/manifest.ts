/**
 * What a sender offers: every file and folder under the paths given, walked once with
 * `lstat` (sizes, modes, mtimes — no content is read, nothing is hashed before the code is
 * shown or the offer is accepted). A folder keeps its name and structure, empty folders
 * included; symbolic links are skipped and reported, followed, or offered as links.
 *
 * @module
 */

import { basename, join } from "@std/path";
import { fileIdentity } from "./hash_cache.ts";

/** One entry of an offer, as it travels (names are relative POSIX paths). */
export interface OfferEntry {
  /** Relative POSIX path, e.g. `photos/2024/a.jpg`. */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Bytes (0 for folders). */
  size: number;
  /** Permission bits (`0o755`…). */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** Symbolic links (`--symlinks preserve`): the link's target text, as `readlink` gives it. */
  target?: string;
  /** Files: the sender's identity of the file ({@linkcode fileIdentity}; the receiver keeps it
   * in the journal). */
  id?: string;
}

/** An offer: what the sender will send. */
export interface Offer {
  entries: OfferEntry[];
  /** Sum of file sizes. */
  totalBytes: number;
}

/** A sender's offer with where each file comes from. */
export interface LocalOffer extends Offer {
  /** Local path of each entry (same order as `entries`). */
  sources: string[];
  /** Symbolic links that were skipped. */
  skippedLinks: string[];
}

/** A path to send does not exist or cannot be read. */
export class SourceError extends Error {
  override name = "SourceError";
}

/** Options for {@linkcode buildOffer}. */
export interface BuildOfferOptions {
  /** Symbolic links: skipped (and listed in `skippedLinks`), followed (a link to a folder
   * already being walked is skipped, so cycles end), or preserved (offered as a link with its
   * target text; the receiver decides whether it may be made). @default {"skip"} */
  symlinks?: "skip" | "follow" | "preserve";
}

/** Walks `paths` into an offer. */
export async function buildOffer(
  paths: string[],
  options: BuildOfferOptions = {},
): Promise<LocalOffer> {
  const follow = options.symlinks === "follow";
  const walking = new Set<string>();
  const offer: LocalOffer = { entries: [], totalBytes: 0, sources: [], skippedLinks: [] };
  const seen = new Set<string>();
  const add = (entry: OfferEntry, source: string) => {
    if (seen.has(entry.path)) {
      throw new SourceError(`two paths would both be sent as ${entry.path}`);
    }
    seen.add(entry.path);
    offer.entries.push(entry);
    offer.sources.push(source);
    offer.totalBytes += entry.size;
  };
  const walk = async (source: string, name: string, info: Deno.FileInfo) => {
    if (info.isSymlink && options.symlinks === "preserve") {
      const target = await Deno.readLink(source);
      const mtimeMs = info.mtime?.getTime() ?? Date.now();
      add({ path: name, type: "symlink", size: 0, mode: 0o777, mtimeMs, target }, source);
      return;
    }
    if (info.isSymlink) {
      if (!follow) {
        offer.skippedLinks.push(source);
        return;
      }
      try {
        info = await Deno.stat(source);
      } catch {
        offer.skippedLinks.push(source); // dangling
        return;
      }
    }
    const mode = (info.mode ?? 0o644) & 0o7777;
    const mtimeMs = info.mtime?.getTime() ?? Date.now();
    if (info.isFile) {
      add({
        path: name,
        type: "file",
        size: info.size,
        mode,
        mtimeMs,
        id: fileIdentity(source, info),
      }, source);
      return;
    }
    if (!info.isDirectory) return; // sockets, devices, FIFOs
    const real = await Deno.realPath(source);
    if (walking.has(real)) {
      offer.skippedLinks.push(source); // a link back into a folder being walked: a cycle
      return;
    }
    walking.add(real);
    add({ path: name, type: "dir", size: 0, mode, mtimeMs }, source);
    const children: string[] = [];
    for await (const child of Deno.readDir(source)) children.push(child.name);
    children.sort();
    for (const child of children) {
      const path = join(source, child);
      await walk(path, `${name}/${child}`, await Deno.lstat(path));
    }
    walking.delete(real);
  };
  for (const path of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (cause) {
      throw new SourceError(`Cannot send ${path}: ${(cause as Error).message}`, { cause });
    }
    const name = basename(path.replace(/\/+$/, "")) || "root";
    const target = info.isSymlink && follow ? await Deno.stat(path).catch(() => info) : info;
    if (!target.isFile && !target.isDirectory && !target.isSymlink) {
      throw new SourceError(`Cannot send ${path}: not a regular file or folder`);
    }
    await walk(path, name, info);
  }
  return offer;
}
