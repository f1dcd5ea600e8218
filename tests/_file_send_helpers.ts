/**
 * Shared setup of the file-send tests: a receiver in process on 127.0.0.1:0 and a pair of
 * temporary folders.
 *
 * @module
 */

import { receiveFiles, type ReceiveOptions, type ReceiveSummary } from "../lib/transfer/mod.ts";
import { ChainedSha256 } from "../lib/hash/chained.ts";
import { CHUNK_SIZE } from "../lib/transfer/frames.ts";
import { JOURNAL_VERSION } from "../lib/transfer/journal.ts";

/** The code every in-process receiver of the tests listens with. */
export const CODE = "velvet-ocean-trip";

/**
 * `file-send receive --dir DIR --host 127.0.0.1 --port 0 EXTRA…`: the command's arguments for
 * a real receiver on loopback.
 */
export function receiveArgs(dir: string, ...extra: string[]): string[] {
  return ["receive", "--dir", dir, "--host", "127.0.0.1", "--port", "0", ...extra];
}

/** A receiver started by {@linkcode startReceiver}. */
export interface Receiver {
  port: number;
  /** The code it shows. */
  code: string;
  done: Promise<ReceiveSummary>;
  /** Event names it logged, in order (unless `options.onEvent` replaced the logger). */
  events: string[];
}

/** Starts receiveFiles (`--once`, {@linkcode CODE}) on 127.0.0.1:0; resolves once it listens. */
export async function startReceiver(
  dir: string,
  options: Partial<ReceiveOptions> = {},
): Promise<Receiver> {
  const ready = Promise.withResolvers<{ port: number; code: string }>();
  const events: string[] = [];
  const done = receiveFiles({
    dir,
    hostname: "127.0.0.1",
    port: 0,
    code: CODE,
    once: true,
    onEvent: (event) => events.push(event),
    ...options,
    onListening: (info) => ready.resolve(info),
  });
  done.catch((error) => ready.reject(error));
  const { port, code } = await ready.promise;
  return { port, code, done, events };
}

/** Runs `fn` with a fresh source and destination folder, removed afterwards. */
export async function withDirs(fn: (src: string, dst: string) => Promise<void>): Promise<void> {
  const src = await Deno.makeTempDir({ prefix: "fs-src-" });
  const dst = await Deno.makeTempDir({ prefix: "fs-dst-" });
  try {
    await fn(src, dst);
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
}

/**
 * The journal an earlier session would have left for a file of `size` bytes and `mtimeMs`
 * whose chunk 0 (`chunk0`, 4 MiB) it verified — not sealed (that session did not stop
 * cleanly), so the receiver re-reads the `.part` before the rename.
 */
export async function unsealedJournal(
  size: number,
  mtimeMs: number,
  chunk0: Uint8Array,
): Promise<string> {
  const hash = ChainedSha256.fresh();
  const digest = await hash.update(chunk0);
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  const header = JSON.stringify({ v: JOURNAL_VERSION, size, mtimeMs, chunkSize: CHUNK_SIZE });
  return `${header}\nC 0 ${hex} ${hash.stateHex()}\n`;
}
