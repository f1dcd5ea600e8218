/**
 * Saving received files, for any transport: atomic, hash-verified writes (a download is either
 * complete and verified at its name, or not there) and safe file names inside a folder.
 *
 * @module
 */

export * from "./atomic_file.ts";
export * from "./safe_name.ts";
