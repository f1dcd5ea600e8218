/**
 * Hashing: streaming SHA-256 of files, readers and byte chunks, and constant-time digest
 * comparison.
 *
 * @module
 */

export * from "./sha256.ts";
