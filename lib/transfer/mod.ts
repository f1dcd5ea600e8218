/**
 * file-send: verified, code-authorized, resumable file and folder transfer (issue 10,
 * docs/PROTOCOL.md section 10).
 *
 * @module
 */

export * from "./code.ts";
export * from "./errors.ts";
export * from "./frames.ts";
export * from "./hash_cache.ts";
export * from "./manifest.ts";
export * from "./names.ts";
export * from "./receiver.ts";
export * from "./sender.ts";
export * from "./spake2.ts";
export * from "./progress.ts";
