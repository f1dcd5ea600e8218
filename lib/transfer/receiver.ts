/**
 * `file-send receive`: listens with an ephemeral TLS certificate, checks the code, shows the
 * offer, then receives into DIR — each file into `NAME.part` with a journal of verified
 * chunks, renamed into place only when its hash matched.
 *
 * Flow after the code check (docs/PROTOCOL.md section 10):
 *
 *     sender → OFFER {entries}          receiver → ANSWER {accept, files: [{action, have}]}
 *     sender → DATA × missing chunks, FILE_END {file, root, sha256}   (per file, in order)
 *     receiver → FILE_OK {file, name, sha256}   …   sender → DONE   receiver → DONE {files}
 *     either → ERROR {message} and closes, at any point.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { ChainedSha256 } from "../hash/chained.ts";
import { chunkCount, chunkLength, hashFileChain, manifestRoot } from "./chain.ts";
import { extname, join } from "@std/path";
import { delay } from "@std/async/delay";
import { ConnectionClosed, DenoChannel, readFrame, readHeader } from "./channel.ts";
import { createEphemeralCert, type EphemeralCert } from "./cert.ts";
import { checkReceiveDir, DEFAULT_FILE_SEND_PORT } from "./receive_dir.ts";
import { alignedBuffer } from "./direct_write.ts";
import { generateCode, normalizeCode } from "./code.ts";
import { IntegrityError, TransferError, TransferRefused, WrongCodeError } from "./errors.ts";
import {
  CHUNK_SIZE,
  DATA_HEADER_SIZE,
  decodeDataHeader,
  FrameError,
  FrameType,
  jsonFrame,
  parseJson,
  peerMessage,
} from "./frames.ts";
import { freeSpace } from "./free_space.ts";
import { receiverHandshake } from "./handshake.ts";
import { type JournalKey, PartialFile } from "./journal.ts";
import type { Offer, OfferEntry } from "./manifest.ts";
import {
  assertStillInside,
  checkOfferedName,
  linkTargetProblem,
  MAX_FILE_NAME_BYTES,
  resolveInside,
  UnsafeNameError,
} from "./names.ts";

/** Most entries (files and folders) one offer may have. */
export const MAX_OFFER_ENTRIES = 100_000;
/** `.part.journal`, appended to a file's name while it streams in. */
const PART_SUFFIX_BYTES = ".part.journal".length;
const encoder = new TextEncoder();

export { DEFAULT_FILE_SEND_PORT } from "./receive_dir.ts";

/** What to do when a file of the same name exists. */
export type OnExists = "rename" | "overwrite" | "skip" | "ask";

/** Options for {@linkcode receiveFiles}. */
export interface ReceiveOptions {
  /** Where files go. */
  dir: string;
  /** Listen address. @default {"0.0.0.0"} */
  hostname?: string;
  /** Listen port (0: any free one). @default {9009} */
  port?: number;
  /** The code; a random three-word code when left out. */
  code?: string;
  /** @default {"rename"} */
  onExists?: OnExists;
  /** Refuse offers larger than this many bytes. */
  maxSize?: number;
  /** End after the first connection whatever its outcome (else wrong codes and dropped
   * connections are survived until a transfer completes). @default {false} */
  once?: boolean;
  /** Wrong codes after which the code is burned. @default {5} */
  maxFailures?: number;
  /** Time for the TLS handshake and each control message. @default {10000} */
  timeoutMs?: number;
  /** A connection that brings no byte for this long while a frame is awaited is dropped.
   * @default {max(30000, 3 × timeoutMs)} */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /** While a resumed file is re-read before its rename, a WAIT frame goes to the sender
   * this often (its idle timeout must not fire). @default {2000} */
  waitEveryMs?: number;
  /** Called with the code as soon as it is known (before the socket listens). */
  onCode?: (code: string) => void;
  /** The certificate to listen with (a command starts making it before this module is
   * loaded); a new one from {@linkcode createEphemeralCert} when absent. */
  certificate?: Promise<EphemeralCert>;
  /** Called once listening. */
  onListening?: (info: { hostname: string; port: number; code: string }) => void;
  /** Asked (after the code matched) whether to accept; accept when absent. */
  confirmOffer?: (offer: Offer, from: string) => Promise<boolean>;
  /** With onExists "ask": what to do with an existing file (rename when absent). */
  askExisting?: (path: string) => Promise<"rename" | "overwrite" | "skip">;
  /** Bytes present of the accepted files (verified chunks, kept or new), of `total`. */
  onProgress?: (done: number, total: number) => void;
  /** Events for the log and the user: wrong_code, connection_lost, refused… */
  onEvent?: (event: string, fields: Record<string, unknown>) => void;
}

/** One file of a completed receive. */
export interface ReceivedFile {
  /** Offered path. */
  path: string;
  /** Where it was saved (relative to DIR), or null when skipped. */
  savedAs: string | null;
  bytes: number;
  /** Whole-file SHA-256 (hex), computed on this side (the last chained chunk hash); null for
   * a file not received. */
  sha256: string | null;
  /** SHA-256 over the chunk hashes (the manifest root). */
  root: string;
  /** Bytes that came over the network this session. */
  received: number;
}

/** A symbolic link of the offer (`--symlinks preserve`). */
export interface ReceivedLink {
  path: string;
  target: string;
  /** Where it was made (relative to DIR), or null when refused. */
  savedAs: string | null;
  /** Why it was refused. */
  reason?: string;
}

/** The result of {@linkcode receiveFiles}. */
export interface ReceiveSummary {
  from: string;
  files: ReceivedFile[];
  /** Symbolic links offered, made or refused. */
  links: ReceivedLink[];
  /** Bytes received over the network. */
  bytes: number;
  /** Bytes this side read back from disk (a re-read `.part`, an existing file compared). */
  bytesRead: number;
  seconds: number;
}

/** Payload of a file's plan in the ANSWER. */
interface FilePlan {
  /** "compare": a file of that name and size exists and --on-exists is skip; `root` is its
   * manifest root, and the sender sends the file only when its own root differs. */
  action: "send" | "skip" | "compare" | "link";
  /** Why a link is not made (action "skip"). */
  reason?: string;
  /** Chunks already verified, 0 … k−1: [index, chained hash hex]. */
  have: [number, string][];
  root?: string;
}

/**
 * Receives one transfer. Resolves with its summary; rejects on a refused offer, an
 * integrity failure, a burned code, or (with `once`) any failed attempt.
 */
export async function receiveFiles(options: ReceiveOptions): Promise<ReceiveSummary> {
  const dir = await checkReceiveDir(options.dir);
  const code = options.code ? normalizeCode(options.code) : generateCode();
  // The code is shown at once; the certificate (~25 ms of openssl) and the socket follow.
  options.onCode?.(code);
  const { key, cert, fingerprint } = await (options.certificate ?? createEphemeralCert());
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? DEFAULT_FILE_SEND_PORT;
  let listener: Deno.TlsListener;
  try {
    listener = Deno.listenTls({ hostname, port, key, cert });
  } catch (cause) {
    throw new TransferError(`Cannot listen on ${hostname}:${port}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const signal = options.signal;
  const stop = () => {
    try {
      listener.close();
    } catch {
      // closed
    }
  };
  signal?.addEventListener("abort", stop, { once: true });
  options.onListening?.({ hostname, port: listener.addr.port, code });
  const failuresByIp = new Map<string, number>();
  let failures = 0;
  const maxFailures = options.maxFailures ?? 5;
  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    for (;;) {
      let conn: Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch (cause) {
        if (signal?.aborted) throw new TransferError("stopped", { cause });
        throw cause;
      }
      const ip = conn.remoteAddr.hostname;
      const from = `${ip}:${conn.remoteAddr.port}`;
      // A sender that stops sending mid-transfer is dropped after this long without a byte.
      const channel = new DenoChannel(conn, {
        idleTimeoutMs: options.idleTimeoutMs ?? Math.max(30_000, timeoutMs * 3),
      });
      let authenticated = false;
      try {
        const handshake = conn.handshake();
        const stopTimer = new AbortController();
        const timer = delay(timeoutMs, { signal: stopTimer.signal }).then(() => {
          throw new TransferError(`no TLS handshake from ${from} within ${timeoutMs} ms`);
        });
        await Promise.race([handshake, timer]).finally(() => stopTimer.abort());
        await receiverHandshake(channel, code, fingerprint, async () => {
          // Repeated wrong codes from one address wait longer each time (1, 2, 4… s, ≤ 16 s).
          const n = failuresByIp.get(ip) ?? 0;
          if (n > 0) await delay(Math.min(16_000, 1000 * 2 ** (n - 1)), { signal });
        });
        authenticated = true;
        const summary = await session(channel, dir, from, options);
        return summary;
      } catch (error) {
        channel.close();
        if (error instanceof WrongCodeError) {
          failures++;
          failuresByIp.set(ip, (failuresByIp.get(ip) ?? 0) + 1);
          options.onEvent?.("wrong_code", { from, failures, maxFailures });
          if (failures >= maxFailures) {
            throw new TransferError(
              `the code was burned after ${failures} wrong attempts; start receive again for a ` +
                "new code",
            );
          }
          if (options.once) throw error;
          continue;
        }
        if (!authenticated && !signal?.aborted) {
          // Whatever a connection does before the code check passed (not TLS, a failed TLS
          // handshake, a malformed share, silence) ends that connection only.
          const message = error instanceof Error ? error.message : String(error);
          options.onEvent?.("connection_lost", { from, error: message });
          if (options.once) throw new TransferError(`${from}: ${message}`, { cause: error });
          continue;
        }
        if (error instanceof ConnectionClosed || error instanceof FrameError) {
          options.onEvent?.("connection_lost", { from, error: error.message });
          if (options.once) throw new TransferError(`${from}: ${error.message}`);
          continue;
        }
        if (
          error instanceof TransferError && !(error instanceof TransferRefused) &&
          !(error instanceof IntegrityError) && !options.once && /handshake/.test(error.message)
        ) {
          options.onEvent?.("connection_lost", { from, error: error.message });
          continue;
        }
        throw error;
      }
    }
  } finally {
    signal?.removeEventListener("abort", stop);
    stop();
  }
}

/** Reads and checks the offer. */
function parseOffer(payload: Uint8Array): Offer {
  const value = parseJson(payload);
  if (!Array.isArray(value.entries)) throw new FrameError("Cannot decode offer: no entries");
  if (value.entries.length > MAX_OFFER_ENTRIES) {
    throw new UnsafeNameError(
      `an offer of ${value.entries.length} entries (at most ${MAX_OFFER_ENTRIES})`,
    );
  }
  const entries: OfferEntry[] = [];
  let totalBytes = 0;
  for (const raw of value.entries as unknown[]) {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new FrameError("Cannot decode offer: an entry is not an object");
    }
    const e = raw as Record<string, unknown>;
    const segments = checkOfferedName(e.path);
    if (
      e.type === "file" &&
      encoder.encode(segments.at(-1)!).length + PART_SUFFIX_BYTES > MAX_FILE_NAME_BYTES
    ) {
      throw new UnsafeNameError(
        `${JSON.stringify(e.path).slice(0, 60)}…: a file name over ` +
          `${MAX_FILE_NAME_BYTES - PART_SUFFIX_BYTES} bytes (its .part.journal would not fit)`,
      );
    }
    const type = e.type === "dir" || e.type === "file" || e.type === "symlink" ? e.type : undefined;
    const size = typeof e.size === "number" ? e.size : e.type !== "file" ? 0 : NaN;
    if (!type || !Number.isSafeInteger(size) || size < 0) {
      throw new FrameError(`Cannot decode offer: bad entry ${JSON.stringify(e.path)}`);
    }
    const mode = Number.isInteger(e.mode) ? (e.mode as number) & 0o777 : 0o644;
    const mtimeMs = Number.isFinite(e.mtimeMs) ? (e.mtimeMs as number) : Date.now();
    const id = typeof e.id === "string" && /^[0-9a-f]{1,64}$/.test(e.id) ? e.id : undefined;
    entries.push({
      path: e.path as string,
      type,
      size: type === "file" ? size : 0,
      mode,
      mtimeMs,
      ...(id && type === "file" ? { id } : {}),
      // Checked when planning: an unsafe target refuses that entry only.
      ...(type === "symlink" ? { target: typeof e.target === "string" ? e.target : "" } : {}),
    });
    totalBytes += type === "file" ? size : 0;
  }
  checkCollisions(entries);
  return { entries, totalBytes };
}

/**
 * Refuses an offer whose names would land on each other: the same name twice, names equal
 * once Unicode-normalized (NFC) and case-folded (one file on macOS and Windows), a file that
 * is also a folder of another entry's path, or a file named like another's `.part` or
 * `.part.journal`.
 */
function checkCollisions(entries: OfferEntry[]): void {
  const key = (path: string) => path.normalize("NFC").toLowerCase();
  const seen = new Map<string, string>();
  const files = new Set<string>();
  const folders = new Set<string>();
  for (const entry of entries) {
    const k = key(entry.path);
    const before = seen.get(k);
    if (before !== undefined) {
      throw new UnsafeNameError(
        `${JSON.stringify(entry.path)} collides with ${JSON.stringify(before)}`,
      );
    }
    seen.set(k, entry.path);
    (entry.type === "dir" ? folders : files).add(k);
    const segments = k.split("/");
    for (let i = 1; i < segments.length; i++) folders.add(segments.slice(0, i).join("/"));
  }
  for (const f of files) {
    if (folders.has(f)) {
      throw new UnsafeNameError(`${JSON.stringify(seen.get(f))} is both a file and a folder`);
    }
    for (const suffix of [".part", ".part.journal"]) {
      if (files.has(f + suffix) || folders.has(f + suffix)) {
        throw new UnsafeNameError(
          `${JSON.stringify(seen.get(f + suffix) ?? f + suffix)} collides with the partial ` +
            `file of ${JSON.stringify(seen.get(f))}`,
        );
      }
    }
  }
}

/** A name not taken yet: `name (1).ext`, `name (2).ext`… */
async function freeName(path: string): Promise<string> {
  const ext = extname(path);
  const stem = path.slice(0, path.length - ext.length);
  for (let n = 0;; n++) {
    const candidate = n === 0 ? path : `${stem} (${n})${ext}`;
    try {
      await Deno.lstat(candidate);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return candidate;
      throw error;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

interface FileState {
  entry: OfferEntry;
  /** For a "compare" plan: the root of the file already there. */
  existingRoot?: string;
  index: number;
  target: string;
  policy: "rename" | "overwrite";
  partial: PartialFile;
  /** Chunks received in this session. */
  chunksReceived: number;
  received: number;
  /** The running chained hash, from the first DATA chunk of this session on. */
  hash?: ChainedSha256;
  /** The chunk the next DATA must carry. */
  nextChunk?: number;
}

async function session(
  channel: DenoChannel,
  dir: string,
  from: string,
  options: ReceiveOptions,
): Promise<ReceiveSummary> {
  const started = performance.now();
  const counters = { bytesRead: 0 };
  const offerFrame = await readFrame(channel);
  if (offerFrame.type !== FrameType.OFFER) throw new FrameError("Cannot decode: expected OFFER");
  const refuse = async (message: string): Promise<never> => {
    await channel.write(jsonFrame(FrameType.ANSWER, { accept: false, reason: message }))
      .catch(() => {});
    options.onEvent?.("refused", { from, reason: message });
    throw new TransferRefused(message);
  };
  let offer: Offer;
  try {
    offer = parseOffer(offerFrame.payload);
  } catch (error) {
    if (error instanceof UnsafeNameError) {
      return await refuse(`refused an unsafe name: ${error.message}`);
    }
    if (error instanceof FrameError) return await refuse(`refused: ${error.message}`);
    throw error;
  }
  if (options.maxSize !== undefined && offer.totalBytes > options.maxSize) {
    return await refuse(
      `the offer is ${offer.totalBytes} bytes, more than --max-size ${options.maxSize}`,
    );
  }
  if (options.confirmOffer && !(await options.confirmOffer(offer, from))) {
    return await refuse("the receiver declined");
  }
  // Plan, touching nothing yet: check every name against DIR (links on the way refuse the
  // offer), read the journals of partial files, then check the free space.
  const plans: FilePlan[] = [];
  const links: ReceivedLink[] = [];
  const toOpen: {
    index: number;
    entry: OfferEntry;
    segments: string[];
    target: string;
    policy: "rename" | "overwrite";
    existingRoot?: string;
  }[] = [];
  let missing = 0;
  let present = 0;
  try {
    for (const [index, entry] of offer.entries.entries()) {
      const segments = checkOfferedName(entry.path);
      const target = await resolveInside(dir, segments, { mkdir: false });
      if (entry.type === "dir") {
        plans.push({ action: "skip", have: [] });
        continue;
      }
      if (entry.type === "symlink") {
        // Made at the end (after the files), only when its target stays inside DIR.
        const problem = linkTargetProblem(segments, entry.target);
        if (problem) {
          const reason = `link ${peerMessage(JSON.stringify(entry.path))} → ${
            peerMessage(JSON.stringify(entry.target))
          } not made: ${problem}`;
          plans.push({ action: "skip", have: [], reason });
          links.push({ path: entry.path, target: entry.target ?? "", savedAs: null, reason });
          options.onEvent?.("link_refused", { from, path: entry.path, reason });
        } else {
          plans.push({ action: "link", have: [] });
          links.push({ path: entry.path, target: entry.target!, savedAs: null });
        }
        continue;
      }
      let policy: "rename" | "overwrite" | "skip" = options.onExists === "ask"
        ? "rename"
        : options.onExists ?? "rename";
      if (await exists(target)) {
        if (options.onExists === "ask") {
          policy = await options.askExisting?.(entry.path) ?? "rename";
        }
        const info = await Deno.lstat(target);
        if (policy === "skip") {
          if (info.isFile && info.size === entry.size) {
            // Identical (same size and hash) is skipped; the sender compares the roots.
            const root = await fileRoot(target, counters);
            plans.push({ action: "compare", have: [], root });
            toOpen.push({ index, entry, segments, target, policy: "rename", existingRoot: root });
            missing += entry.size;
            continue;
          }
          policy = "rename"; // not identical: kept beside the existing file
        }
        if (!info.isFile) {
          throw new UnsafeNameError(`${JSON.stringify(entry.path)} is a folder here`);
        }
      }
      const known = await PartialFile.peek(target, journalKey(entry));
      const have = [...known.have.entries()].sort(([a], [b]) => a - b); // 0 … k−1
      const haveBytes = have.reduce((n, [i]) => n + chunkLength(entry.size, i), 0);
      present += haveBytes;
      missing += entry.size - haveBytes;
      plans.push({ action: "send", have });
      toOpen.push({
        index,
        entry,
        segments,
        target,
        policy: policy === "overwrite" ? "overwrite" : "rename",
      });
    }
  } catch (error) {
    if (error instanceof UnsafeNameError) return await refuse(`refused: ${error.message}`);
    throw error;
  }
  const free = await freeSpace(dir);
  if (free !== undefined && free < missing) {
    return await refuse(`not enough free space in ${dir}: ${missing} bytes needed, ${free} free`);
  }
  const states = new Map<number, FileState>();
  try {
    for (const { index, entry, segments, target, policy, existingRoot } of toOpen) {
      await resolveInside(dir, segments, { mkdir: true });
      await assertStillInside(dir, target);
      const partial = await PartialFile.open(target, journalKey(entry));
      states.set(index, {
        entry,
        index,
        target,
        policy,
        partial,
        ...(existingRoot ? { existingRoot } : {}),
        chunksReceived: 0,
        received: 0,
      });
    }
    for (const entry of offer.entries) {
      // Creates the folder itself (and its parents), checked like any path.
      if (entry.type === "dir") {
        await resolveInside(dir, [...checkOfferedName(entry.path), "-"], { mkdir: true });
      }
    }
  } catch (error) {
    // A link planted since the plan: what this offer made so far goes, then the refusal.
    for (const s of states.values()) {
      if (s.partial.have.size === 0) await s.partial.discard();
      else s.partial.close();
    }
    if (error instanceof UnsafeNameError) return await refuse(`refused: ${error.message}`);
    throw error;
  }
  await channel.write(jsonFrame(FrameType.ANSWER, { accept: true, files: plans }));
  options.onEvent?.("accepted", { from, files: offer.entries.length, bytes: offer.totalBytes });
  const total = present + missing;
  let done = present;
  options.onProgress?.(done, total);
  const files: ReceivedFile[] = [];
  for (const [index, entry] of offer.entries.entries()) {
    if (entry.type === "file" && plans[index]!.action === "skip") {
      files.push({
        path: entry.path,
        savedAs: null,
        bytes: entry.size,
        sha256: null,
        root: "",
        received: 0,
      });
    }
  }
  // Each chunk is hashed (on a worker thread) and then written while the next one is read
  // from the network; a buffer is read into again once its chunk is on its way to disk.
  // Aligned, so that the `.part` can be written with O_DIRECT (lib/transfer/direct_write.ts).
  const buffers = Array.from({ length: 3 }, () => alignedBuffer(CHUNK_SIZE));
  const bufferFree: Promise<unknown>[] = buffers.map(() => Promise.resolve());
  let turn = 0;
  /** The last chunk's hash (the next one goes on from its state). */
  let hashed: Promise<unknown> = Promise.resolve();
  /** The last chunk's write. */
  let pending: Promise<void> = Promise.resolve();
  /** A chunk that did not match, or a write that failed: said to the sender at once. */
  let stepError: TransferError | undefined;
  const failStep = (error: TransferError): never => {
    if (!stepError) {
      stepError = error;
      // Said at once (the read of the next frame may wait for long): ERROR, then close.
      void channel.write(jsonFrame(FrameType.ERROR, { message: error.message }))
        .catch(() => {}).finally(() => channel.close());
    }
    throw stepError;
  };
  let bytes = 0;
  try {
    for (;;) {
      const header = await readHeader(channel);
      if (header.type === FrameType.DATA) {
        const head = new Uint8Array(DATA_HEADER_SIZE);
        await channel.readInto(head);
        const data = decodeDataHeader(head);
        const state = states.get(data.file);
        const length = header.length - DATA_HEADER_SIZE;
        if (
          !state || data.chunk * CHUNK_SIZE >= Math.max(state.entry.size, 1) ||
          length !== chunkLength(state.entry.size, data.chunk)
        ) {
          throw new FrameError(`Cannot decode frame: unexpected chunk ${data.file}/${data.chunk}`);
        }
        const slot = turn;
        turn = (turn + 1) % buffers.length;
        await bufferFree[slot];
        if (stepError) throw stepError;
        const buffer = buffers[slot]!.subarray(0, length);
        await channel.readInto(buffer);
        // Read before it is judged: an ERROR sent with unread bytes behind it would be lost to
        // the reset that closing then causes. Chunks come in order: the first one this session
        // continues the verified prefix (or replaces its end: the sender's file differs from
        // there), each next one follows.
        if (state.hash === undefined) {
          if (data.chunk > state.partial.have.size) {
            throw new FrameError(
              `Cannot decode frame: chunk ${data.file}/${data.chunk} does not follow the ` +
                `${state.partial.have.size} verified`,
            );
          }
          await pending;
          state.partial.replaceFrom(data.chunk);
          const before = data.chunk > 0 ? state.partial.states.get(data.chunk - 1) : undefined;
          if (data.chunk > 0 && before === undefined) {
            throw new FrameError(
              `Cannot decode frame: chunk ${data.file}/${data.chunk} unexpected`,
            );
          }
          state.hash = before ? ChainedSha256.fromState(before) : ChainedSha256.fresh();
        } else if (data.chunk !== state.nextChunk) {
          throw new FrameError(
            `Cannot decode frame: chunk ${data.file}/${data.chunk} out of order (expected ` +
              `${state.nextChunk})`,
          );
        }
        state.nextChunk = data.chunk + 1;
        const { hash, partial, entry } = state;
        const { chunk, sha256: expected } = data;
        const previousWrite = pending;
        const verified = hashed.then(async () => {
          const digest = await hash.update(buffer);
          if (!digestBytesEqual(digest, expected)) {
            await previousWrite.catch(() => {});
            await partial.discard();
            failStep(
              new IntegrityError(
                `${entry.path}: chunk ${chunk} does not match its SHA-256; the partial file ` +
                  "was deleted",
              ),
            );
          }
          return { hex: Buffer.from(digest).toString("hex"), stateHex: hash.stateHex() };
        });
        hashed = verified;
        pending = Promise.all([verified, previousWrite]).then(([{ hex, stateHex }]) =>
          partial.writeChunk(chunk, buffer, hex, stateHex).catch((cause) =>
            failStep(
              new TransferError(
                `Cannot write ${entry.path}: ${(cause as Error).message} (the verified part ` +
                  "is kept as .part for a resume)",
                { cause },
              ),
            )
          )
        );
        // Awaited before the buffer's reuse, at FILE_END and DONE; a failure surfaces there.
        hashed.catch(() => {});
        pending.catch(() => {});
        bufferFree[slot] = pending.catch(() => {});
        bytes += length;
        state.chunksReceived++;
        state.received += length;
        done += length;
        options.onProgress?.(done, total);
        continue;
      }
      const payload = new Uint8Array(header.length);
      await channel.readInto(payload);
      if (header.type === FrameType.FILE_END) {
        await pending;
        const end = parseJson(payload);
        const state = states.get(Number(end.file));
        if (!state) throw new FrameError("Cannot decode: FILE_END for an unknown file");
        if (end.identical === true && state.existingRoot !== undefined) {
          // The sender's root equals the existing file's: nothing was sent, nothing changes.
          if (end.root !== state.existingRoot || state.partial.have.size > 0) {
            throw new FrameError("Cannot decode: FILE_END identical, but the roots differ");
          }
          await state.partial.discard();
          const f = state.entry;
          files.push({
            path: f.path,
            savedAs: null,
            bytes: f.size,
            sha256: null,
            root: end.root,
            received: 0,
          });
        } else {
          files.push(
            await finishFile(state, end, dir, channel, options.waitEveryMs ?? 2000, counters),
          );
        }
        states.delete(state.index);
        await channel.write(
          jsonFrame(FrameType.FILE_OK, {
            file: state.index,
            name: files.at(-1)!.savedAs,
            sha256: files.at(-1)!.sha256,
          }),
        );
        continue;
      }
      if (header.type === FrameType.DONE) {
        await pending;
        if (states.size > 0) {
          throw new TransferError(
            `the sender ended before sending ${[...states.values()][0]!.entry.path}`,
          );
        }
        await makeLinks(dir, links, options.onExists === "overwrite");
        await applyFolderAttributes(dir, offer);
        await channel.write(jsonFrame(FrameType.DONE, { files: files.length }));
        channel.close();
        const seconds = (performance.now() - started) / 1000;
        return { from, files, links, bytes, bytesRead: counters.bytesRead, seconds };
      }
      if (header.type === FrameType.WAIT) continue; // the sender hashes chunks this side has
      if (header.type === FrameType.ERROR) {
        throw new ConnectionClosed(
          `the sender stopped: ${peerMessage(parseJson(payload).message)}`,
        );
      }
      throw new FrameError(`Cannot decode: unexpected frame type ${header.type}`);
    }
  } catch (error) {
    await pending.catch(() => {});
    // What arrived stays for a resume: fsynced, journaled and sealed.
    for (const s of states.values()) await s.partial.suspend();
    if (stepError) throw stepError; // already sent to the sender
    // The sender learns why (a hash mismatch…), unless the connection is gone.
    if (
      (error instanceof TransferError && !(error instanceof ConnectionClosed)) ||
      error instanceof FrameError
    ) {
      await channel.write(jsonFrame(FrameType.ERROR, { message: error.message })).catch(() => {});
    }
    throw error;
  }
}

function journalKey(entry: OfferEntry): JournalKey {
  return { size: entry.size, mtimeMs: entry.mtimeMs, ...(entry.id ? { id: entry.id } : {}) };
}

/** Checks a file's root, then renames it into place. */
async function finishFile(
  state: FileState,
  end: Record<string, unknown>,
  dir: string,
  channel: DenoChannel,
  waitEveryMs: number,
  counters: { bytesRead: number },
): Promise<ReceivedFile> {
  const { entry, partial } = state;
  const chunks = chunkCount(entry.size);
  // Every chunk written is fsynced and in the journal (and in `have`) after this.
  await partial.finish();
  const hashes: string[] = [];
  for (let i = 0; i < chunks; i++) {
    const hex = partial.have.get(i) ?? (entry.size === 0 ? EMPTY_SHA256 : undefined);
    if (hex === undefined) {
      await partial.discard();
      throw new IntegrityError(
        `${entry.path}: chunk ${i} never arrived; the partial file was deleted`,
      );
    }
    hashes.push(hex);
  }
  const rootHex = manifestRoot(hashes);
  if (rootHex !== end.root) {
    await partial.discard();
    throw new IntegrityError(
      `${entry.path}: the file's SHA-256 does not match the sender's; the partial file was deleted`,
    );
  }
  // The last chained hash is the whole file's SHA-256: each chunk's was computed here, on
  // arrival in this session or in one whose journal this side wrote.
  const sha256 = hashes.at(-1)!;
  if (!partial.sealed) {
    // The journal's chunks of an earlier session cannot be vouched for (that session did not
    // stop cleanly, or something wrote to the .part since its seal): the .part as it is on
    // disk is read once and each chunk's chained hash checked against the journal's.
    // WAIT every 2 s tells the sender this side is busy, not gone.
    let told = performance.now();
    const disk = await hashFileChain(partial.partPath, entry.size, async () => {
      if (performance.now() - told < waitEveryMs) return;
      told = performance.now();
      await channel.write(jsonFrame(FrameType.WAIT, {}));
    });
    counters.bytesRead += disk.bytesRead;
    const bad = disk.hashes.findIndex((hex, i) => hex !== hashes[i]);
    if (bad >= 0 || disk.hashes.length !== chunks) {
      await partial.discard();
      throw new IntegrityError(
        `${entry.path}: chunk ${bad >= 0 ? bad : disk.hashes.length} of the partial file ` +
          "on disk does not match its SHA-256 in the journal; the partial file was deleted " +
          "(send again to start it over)",
      );
    }
  }
  await Deno.chmod(partial.partPath, entry.mode & 0o777).catch(() => {});
  const mtime = new Date(entry.mtimeMs);
  await Deno.utime(partial.partPath, mtime, mtime).catch(() => {});
  const target = state.policy === "overwrite" ? state.target : await freeName(state.target);
  // The folder may have been swapped for a link while the file streamed in.
  await assertStillInside(dir, target).catch((cause) => {
    throw new TransferError(
      `Cannot save ${entry.path}: ${(cause as Error).message} (kept as .part)`,
      { cause },
    );
  });
  await Deno.rename(partial.partPath, target);
  await Deno.remove(partial.journalPath).catch(() => {});
  const savedAs = target.slice(dir.length + 1);
  return {
    path: entry.path,
    savedAs,
    bytes: entry.size,
    sha256,
    root: rootHex,
    received: state.received,
  };
}

/** The manifest root of a complete file on this side (for --on-exists skip). */
async function fileRoot(path: string, counters: { bytesRead: number }): Promise<string> {
  const size = (await Deno.stat(path)).size;
  const chain = await hashFileChain(path, size);
  counters.bytesRead += chain.bytesRead;
  return manifestRoot(chain.hashes);
}

/** Compares two digests without an early exit. */
function digestBytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** SHA-256 of no bytes: the one chunk hash of an empty file. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * Makes the accepted links (their targets were checked): the folder is made and checked like
 * any path, an existing entry of the name is kept and the link named `name (1)` (or, with
 * `overwrite`, an existing link or file is replaced). `Deno.symlink` never follows a link at
 * the link's own path.
 */
async function makeLinks(dir: string, links: ReceivedLink[], overwrite: boolean): Promise<void> {
  for (const link of links) {
    if (link.reason !== undefined) continue;
    const segments = checkOfferedName(link.path);
    let path = await resolveInside(dir, segments, { mkdir: true }).catch((e: Error) => {
      link.reason = e.message;
      return null;
    });
    if (path === null) continue;
    await assertStillInside(dir, path);
    if (overwrite) {
      const info = await Deno.lstat(path).catch(() => null);
      if (info && !info.isDirectory) await Deno.remove(path);
    }
    path = await freeName(path);
    await Deno.symlink(link.target, path);
    link.savedAs = path.slice(dir.length + 1);
  }
}

/** Folder modes and mtimes, deepest first (after their files were written). */
async function applyFolderAttributes(dir: string, offer: Offer): Promise<void> {
  const folders = offer.entries.filter((e) => e.type === "dir").reverse();
  for (const folder of folders) {
    const path = join(dir, ...folder.path.split("/"));
    await Deno.chmod(path, (folder.mode & 0o777) | 0o700).catch(() => {});
    const mtime = new Date(folder.mtimeMs);
    await Deno.utime(path, mtime, mtime).catch(() => {});
  }
}
