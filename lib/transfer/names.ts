/**
 * Names a sender offers are checked on the receiver, never trusted: a name must be a
 * relative POSIX path of segments that each are a plain file name. Refused (not repaired —
 * a hostile offer is refused whole): empty names or segments, `.` and `..`, a leading `/`,
 * backslashes, NUL and other control or bidi characters, the characters Windows forbids
 * (`<>:"|?*`), Windows device names (`CON`, `nul.txt`, `COM1`…), segments ending in a dot or
 * a space, segments over 255 UTF-8 bytes, paths over 4096 bytes. Then, when writing, no
 * existing folder on the way may be a symbolic link ({@linkcode resolveInside}), so a
 * symlinked folder inside DIR cannot lead outside it either.
 *
 * @module
 */

import { dirname, join } from "@std/path";
import { PEER_UNSAFE_CHARS } from "../cli/output.ts";
import { MAX_FILE_NAME_BYTES, RESERVED_DEVICE_NAME } from "../files/safe_name.ts";

export { MAX_FILE_NAME_BYTES };

/** Longest offered path, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;

const UNSAFE = new RegExp(`[${PEER_UNSAFE_CHARS}<>:"|?*\\\\]`, "u");
const encoder = new TextEncoder();

/** An offered name that may not be written. */
export class UnsafeNameError extends Error {
  override name = "UnsafeNameError";
}

/**
 * Checks an offered path and returns its segments.
 *
 * @throws {UnsafeNameError} naming the reason.
 */
export function checkOfferedName(name: unknown): string[] {
  if (typeof name !== "string" || name === "") throw new UnsafeNameError("an empty name");
  const shown = JSON.stringify(name);
  if (encoder.encode(name).length > MAX_PATH_BYTES) {
    throw new UnsafeNameError(`${shown.slice(0, 60)}…: longer than ${MAX_PATH_BYTES} bytes`);
  }
  if (name.startsWith("/")) throw new UnsafeNameError(`${shown}: an absolute path`);
  if (/^[a-zA-Z]:/.test(name)) throw new UnsafeNameError(`${shown}: a drive letter`);
  if (name.includes("\\")) throw new UnsafeNameError(`${shown}: a backslash`);
  const segments = name.split("/");
  for (const segment of segments) {
    if (segment === "" || segment === ".") {
      throw new UnsafeNameError(`${shown}: an empty or "." segment`);
    }
    if (segment === "..") throw new UnsafeNameError(`${shown}: a ".." segment`);
    if (UNSAFE.test(segment)) {
      throw new UnsafeNameError(`${shown}: a control or reserved character`);
    }
    if (/[. ]$/.test(segment)) {
      throw new UnsafeNameError(`${shown}: a segment ending in a dot or space`);
    }
    const stem = segment.split(".")[0]!.trimEnd();
    if (RESERVED_DEVICE_NAME.test(stem)) {
      throw new UnsafeNameError(`${shown}: a Windows device name`);
    }
    if (encoder.encode(segment).length > MAX_FILE_NAME_BYTES) {
      throw new UnsafeNameError(`${shown}: a segment over ${MAX_FILE_NAME_BYTES} bytes`);
    }
  }
  return segments;
}

/**
 * The path of `segments` inside `dir`, after checking that no folder on the way that already
 * exists is a symbolic link or not a folder (the final segment may not be a link either,
 * unless it is a regular file being replaced). Creates missing folders when `mkdir` is set.
 *
 * @throws {UnsafeNameError} when the path would leave `dir`.
 */
export async function resolveInside(
  dir: string,
  segments: string[],
  options: { mkdir?: boolean } = {},
): Promise<string> {
  let at = dir;
  for (const [i, segment] of segments.entries()) {
    at = join(at, segment);
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.lstat(at);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        // Too long with DIR in front, not permitted…: refused like any unusable name.
        throw new UnsafeNameError(
          `${JSON.stringify(segments.join("/")).slice(0, 60)}: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
    const last = i === segments.length - 1;
    if (info?.isSymlink) {
      throw new UnsafeNameError(
        `${JSON.stringify(segments.join("/"))}: ${at} is a symbolic link`,
      );
    }
    if (!last) {
      if (info && !info.isDirectory) {
        throw new UnsafeNameError(`${JSON.stringify(segments.join("/"))}: ${at} is not a folder`);
      }
      if (!info && options.mkdir) {
        await Deno.mkdir(at).catch((error) => {
          throw new UnsafeNameError(
            `${JSON.stringify(segments.join("/")).slice(0, 60)}: ${(error as Error).message}`,
            { cause: error },
          );
        });
      }
    }
  }
  return at;
}

/**
 * Checks, right before a file is created or renamed at `path` (inside the real path `dir`),
 * that its folder still resolves to itself: a folder on the way swapped for a link since
 * {@linkcode resolveInside} ran would resolve elsewhere.
 *
 * @throws {UnsafeNameError} when it does not.
 */
export async function assertStillInside(dir: string, path: string): Promise<void> {
  const parent = dirname(path);
  let real: string;
  try {
    real = await Deno.realPath(parent);
  } catch (cause) {
    throw new UnsafeNameError(`${parent}: ${(cause as Error).message}`, { cause });
  }
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  if (real !== parent || !(parent === dir || parent.startsWith(prefix))) {
    throw new UnsafeNameError(`${path}: its folder now leads to ${real}, outside ${dir}`);
  }
}

/**
 * Why the target text of a symbolic link offered at `linkSegments` may not be created, or
 * null when it may: the target, resolved from the link's folder, must stay inside DIR. Only
 * targets of the form `../` × k then plain names (each checked as an offered name) are
 * taken, with k at most the link's depth: a `..` after a name could climb out through a link
 * that name is (`x/..` where `x` → `.`), an absolute target names the sender's disk.
 */
export function linkTargetProblem(linkSegments: string[], target: unknown): string | null {
  if (typeof target !== "string" || target === "") return "an empty target";
  if (encoder.encode(target).length > MAX_PATH_BYTES) {
    return `a target over ${MAX_PATH_BYTES} bytes`;
  }
  if (target.startsWith("/")) return "an absolute target";
  const parts = target.split("/");
  let up = 0;
  while (parts[up] === "..") up++;
  const rest = parts.slice(up);
  if (up > linkSegments.length - 1) return "a target outside DIR";
  if (rest.length === 0) return null;
  try {
    checkOfferedName(rest.join("/"));
  } catch (error) {
    return rest.includes("..") ? 'a ".." after a name' : (error as Error).message;
  }
  return null;
}
