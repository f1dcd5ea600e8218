/**
 * Hashing: streaming SHA-256 of files, readers and byte chunks, a SHA-256 whose state can be
 * saved and resumed (chained chunk hashes), and constant-time digest
 * comparison.
 *
 * @module
 */

export * from "./sha256.ts";
export * from "./chained.ts";
