/**
 * `file-send send`: connects to a receiver over TLS (accepting its unknown certificate, whose
 * fingerprint the code check binds), checks the code, offers the files, and streams the
 * chunks the receiver does not have yet — each read in one 4 MiB block while the previous
 * one is on the wire, hashed once as it goes (chained chunk hashes, lib/transfer/chain.ts: the
 * last is the whole file's SHA-256; the receiver checks each and the manifest root over them).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import tls from "node:tls";
import { ChainedSha256 } from "../hash/chained.ts";
import { chunkCount, chunkLength, fileManifestRoot, manifestRoot } from "./chain.ts";
import { type Channel, ConnectionClosed, NodeChannel, readFrame } from "./channel.ts";
import { certFingerprint } from "./cert.ts";
import { normalizeCode } from "./code.ts";
import { IntegrityError, TransferError, TransferRefused } from "./errors.ts";
import {
  CHUNK_SIZE,
  DATA_HEADER_SIZE,
  encodeDataHeader,
  encodeFrame,
  FrameError,
  FrameType,
  HEADER_SIZE,
  jsonFrame,
  parseJson,
  peerMessage,
} from "./frames.ts";
import { senderHandshake } from "./handshake.ts";
import { buildOffer, type LocalOffer, type Offer } from "./manifest.ts";
import { CACHE_MIN_CHUNKS, ChunkHashCache, fileIdentity } from "./hash_cache.ts";

const FRAME_OFFSET = HEADER_SIZE + DATA_HEADER_SIZE;

/** Options for {@linkcode sendFiles} and {@linkcode connectToReceiver}. */
export interface SendOptions {
  /** The receiver's code. */
  code: string;
  /** Time to connect and for each answer. @default {10000} */
  timeoutMs?: number;
  /** A receiver that takes no byte and sends none for this long (it stalled, or its disk
   * did) is given up on. @default {max(30000, 3 × timeoutMs)} */
  idleTimeoutMs?: number;
  /** Time for the receiver to answer the offer (its user may be asked). @default {300000} */
  answerTimeoutMs?: number;
  /** While chunks the receiver has are hashed here (a resume), a WAIT frame goes to the
   * receiver this often, so that its idle timeout does not fire. @default {2000} */
  waitEveryMs?: number;
  signal?: AbortSignal;
  /** Symbolic links: skipped with a warning, followed, or preserved (sent as links; the
   * receiver makes one only when its target stays inside its DIR). @default {"skip"} */
  symlinks?: "skip" | "follow" | "preserve";
  /** Folder of this side's chunk-hash cache ({@linkcode ChunkHashCache}), so that a resume
   * reads only the chunks it sends; null: none (a resume reads the chunks the receiver has,
   * to check them). The command passes `defaultHashCacheDir()`. @default {null} */
  hashCacheDir?: string | null;
  /** Called with the offer before connecting (what will be sent). */
  onOffer?: (offer: LocalOffer) => void;
  /** Bytes present at the receiver (kept + sent), of `total`. */
  onProgress?: (done: number, total: number) => void;
}

/** One file of a completed send. */
export interface SentFile {
  path: string;
  /** Where the receiver saved it (relative to its DIR), or null when it skipped it. */
  savedAs: string | null;
  bytes: number;
  /** Whole-file SHA-256 (the last chained chunk hash, confirmed by the receiver's root); null
   * for a file not sent. */
  sha256: string | null;
  root: string;
  /** Bytes of it sent this session. */
  sent: number;
}

/** The result of {@linkcode sendFiles}. */
export interface SendSummary {
  files: SentFile[];
  /** Bytes of file content sent this session. */
  bytes: number;
  /** Total size of the files offered. */
  totalBytes: number;
  /** Bytes of file content read from disk this session. */
  bytesRead: number;
  seconds: number;
  skippedLinks: string[];
  /** Links (`--symlinks preserve`) the receiver would not make, with its reason. */
  refusedLinks: string[];
}

/** An authenticated connection to a receiver (after the code check). */
export interface ReceiverConnection {
  channel: Channel;
  close(): void;
}

/**
 * Connects over TLS and runs the code check.
 *
 * @throws {WrongCodeError} when the code does not match (or a relay is in the middle).
 */
export async function connectToReceiver(
  hostname: string,
  port: number,
  options: SendOptions,
): Promise<ReceiverConnection> {
  const code = normalizeCode(options.code);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({
      host: hostname,
      port,
      servername: "file-send",
      // No CA can vouch for an ephemeral certificate: its fingerprint goes into the code check.
      rejectUnauthorized: false,
      minVersion: "TLSv1.2",
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new TransferError(`no answer from ${hostname}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once("secureConnect", () => {
      clearTimeout(timer);
      // A chunk's 45-byte header goes out just before its 4 MiB: without this, Nagle's
      // algorithm and the peer's delayed ACK stall every chunk by ~40 ms.
      s.setNoDelay(true);
      resolve(s);
    });
    s.once("error", (error: Error) => {
      clearTimeout(timer);
      reject(new TransferError(`Cannot connect to ${hostname}:${port}: ${error.message}`));
    });
  });
  const raw = socket.getPeerCertificate()?.raw;
  if (!raw) {
    socket.destroy();
    throw new TransferError("the receiver sent no certificate");
  }
  const channel = new NodeChannel(socket);
  const abort = () => channel.close();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    await withTimeout(
      senderHandshake(channel, code, await certFingerprint(new Uint8Array(raw))),
      timeoutMs,
    );
  } catch (error) {
    channel.close();
    throw error;
  }
  return {
    channel,
    close: () => {
      options.signal?.removeEventListener("abort", abort);
      channel.close();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TransferError(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Sends `paths` (files and folders) to the receiver at `hostname:port`. */
export async function sendFiles(
  paths: string[],
  hostname: string,
  port: number,
  options: SendOptions,
): Promise<SendSummary> {
  const offer = await buildOffer(paths, { symlinks: options.symlinks ?? "skip" });
  options.onOffer?.(offer);
  const started = performance.now();
  const connection = await connectToReceiver(hostname, port, options);
  try {
    return await sendOffer(connection.channel, offer, options, started);
  } catch (error) {
    if (options.signal?.aborted) throw new TransferError("interrupted", { cause: error });
    throw error;
  } finally {
    connection.close();
  }
}

/** The protocol after the code check: offer, answer, chunks, results. */
export async function sendOffer(
  channel: Channel,
  offer: LocalOffer,
  options: SendOptions,
  started = performance.now(),
): Promise<SendSummary> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const idleMs = options.idleTimeoutMs ?? Math.max(30_000, 3 * timeoutMs);
  const answerMs = options.answerTimeoutMs ?? 300_000;
  const wire: Offer = { entries: offer.entries, totalBytes: offer.totalBytes };
  const idle = channel instanceof NodeChannel ? channel : undefined;
  idle?.setIdleTimeout(Math.max(idleMs, answerMs));
  await channel.write(jsonFrame(FrameType.OFFER, wire));
  // The receiver may be asking its user: a longer bound on the answer.
  const answerFrame = await withTimeout(readFrame(channel), answerMs).catch((error) => {
    channel.close();
    throw error;
  });
  idle?.setIdleTimeout(idleMs);
  if (answerFrame.type === FrameType.ERROR) {
    throw new TransferError(`the receiver: ${peerMessage(parseJson(answerFrame.payload).message)}`);
  }
  if (answerFrame.type !== FrameType.ANSWER) throw new FrameError("Cannot decode: expected ANSWER");
  const answer = parseJson(answerFrame.payload);
  if (answer.accept !== true) {
    throw new TransferRefused(`the receiver refused: ${peerMessage(answer.reason ?? "no reason")}`);
  }
  const plans = answer.files as {
    action: string;
    have: [number, string][];
    root?: string;
    reason?: string;
  }[];
  if (
    !Array.isArray(plans) || plans.length !== offer.entries.length || !plans.every(validPlan)
  ) {
    throw new FrameError("Cannot decode: the answer does not match the offer");
  }
  // Results come back while chunks go out: read them concurrently.
  const saved = new Map<number, { name: string | null; sha256: string | null }>();
  let receiverError: Error | undefined;
  let doneResolve = () => {};
  const doneReceived = new Promise<void>((r) => doneResolve = r);
  const reader = (async () => {
    for (;;) {
      const frame = await readFrame(channel);
      if (frame.type === FrameType.FILE_OK) {
        const ok = parseJson(frame.payload);
        saved.set(Number(ok.file), {
          name: typeof ok.name === "string" ? ok.name : null,
          sha256: typeof ok.sha256 === "string" && /^[0-9a-f]{64}$/.test(ok.sha256)
            ? ok.sha256
            : null,
        });
      } else if (frame.type === FrameType.WAIT) {
        continue; // the receiver is busy (re-reading a resumed file): activity, nothing else
      } else if (frame.type === FrameType.DONE) {
        doneResolve();
        return;
      } else if (frame.type === FrameType.ERROR) {
        const message = peerMessage(parseJson(frame.payload).message);
        receiverError = /SHA-256|never arrived/.test(message)
          ? new IntegrityError(`the receiver: ${message}`)
          : new TransferError(`the receiver: ${message}`);
        channel.close();
        return;
      } else throw new FrameError(`Cannot decode: unexpected frame type ${frame.type}`);
    }
  })().catch((error) => {
    receiverError ??= error;
  });
  let total = 0;
  let done = 0;
  for (const [i, entry] of offer.entries.entries()) {
    if (entry.type !== "file" || plans[i]!.action === "skip") continue;
    total += entry.size;
    for (const [c] of plans[i]!.have) done += Math.min(CHUNK_SIZE, entry.size - c * CHUNK_SIZE);
  }
  options.onProgress?.(done, total);
  const files: SentFile[] = [];
  let bytes = 0;
  // Each buffer is a whole DATA frame: the file is read in behind the 45-byte header, so a
  // chunk leaves in one write (a separate small write measured 4× slower here). Three: one
  // being read from disk, one hashed, one on the wire.
  const buffers = Array.from({ length: 3 }, () => new Uint8Array(FRAME_OFFSET + CHUNK_SIZE));
  const inFlight: Promise<unknown>[] = buffers.map(() => Promise.resolve());
  let turn = 0;
  const waitEveryMs = options.waitEveryMs ?? 2000;
  let lastWrite = performance.now();
  let bytesRead = 0;
  const caches: ChunkHashCache[] = [];
  try {
    for (const [index, entry] of offer.entries.entries()) {
      const plan = plans[index]!;
      if (entry.type !== "file") continue;
      if (plan.action === "compare") {
        // The receiver has a file of this name and size (--on-exists skip): identical content
        // (same root) is not sent; different content is sent and kept beside it.
        bytesRead += entry.size;
        if ((await fileManifestRoot(offer.sources[index]!, entry.size)) === plan.root) {
          await channel.write(
            jsonFrame(FrameType.FILE_END, { file: index, root: plan.root, identical: true }),
          );
          files.push({
            path: entry.path,
            savedAs: null,
            bytes: entry.size,
            sha256: null,
            root: plan.root,
            sent: 0,
          });
          continue;
        }
      } else if (plan.action !== "send") {
        files.push({
          path: entry.path,
          savedAs: null,
          bytes: entry.size,
          sha256: null,
          root: "",
          sent: 0,
        });
        continue;
      }
      const have = plan.have.map(([, h]) => String(h)); // chunks 0 … k−1 (checked)
      const chunks = chunkCount(entry.size);
      let sent = 0;
      using file = await Deno.open(offer.sources[index]!, { read: true });
      const identity = fileIdentity(offer.sources[index]!, await file.stat());
      const cache = chunks >= CACHE_MIN_CHUNKS
        ? await ChunkHashCache.open(options.hashCacheDir ?? null, identity, have.length > 0)
        : ChunkHashCache.none();
      caches.push(cache);
      // Chained hashes of chunks 0 … c. Where the receiver has chunks 0 … j and this machine
      // hashed this very file (same identity) with the same hash for chunk j, those chunks are
      // neither read nor sent: a chained hash stands for every byte before it, and the cache
      // holds the state to go on from.
      const hashes: string[] = [];
      let hash = ChainedSha256.fresh();
      let from = 0;
      // Only chunks before the cache's first gap qualify (the root needs 0 … j): one scan.
      let cached = 0;
      while (cached < Math.min(have.length, chunks) && cache.get(cached)) cached++;
      for (let j = cached - 1; j >= 0; j--) {
        const known = cache.get(j)!;
        if (known.hash !== have[j] || (j < chunks - 1 && !known.state)) continue;
        for (let i = 0; i <= j; i++) hashes.push(cache.get(i)!.hash);
        if (known.state) hash = ChainedSha256.fromState(known.state);
        from = j + 1;
        break;
      }
      let position = 0;
      // Once one chunk goes out, every later one does (its hash differs too): the receiver
      // takes a file's chunks in order.
      let sending = false;
      /** The last chunk's hash and decision; the next is hashed from its state. */
      let hashed: Promise<unknown> = Promise.resolve();
      for (let c = from; c < chunks; c++) {
        const length = chunkLength(entry.size, c);
        if (receiverError) throw receiverError;
        const slot = turn;
        turn = (turn + 1) % buffers.length;
        // Reuse this buffer only once its chunk was hashed and the transport took it.
        await inFlight[slot];
        const frame = buffers[slot]!.subarray(0, FRAME_OFFSET + length);
        const buffer = frame.subarray(FRAME_OFFSET);
        const offset = c * CHUNK_SIZE;
        if (offset !== position) await file.seek(offset, Deno.SeekMode.Start);
        await readFull(file, buffer, entry.path);
        bytesRead += length;
        position = offset + length;
        // Hashed (on a worker thread) and sent while the next chunk is read.
        const step = hashed.then(async (): Promise<{ write?: Promise<void> }> => {
          const digest = await hash.update(buffer);
          const hex = Buffer.from(digest).toString("hex");
          hashes.push(hex);
          cache.record(c, hex, hash.stateHex());
          // A chunk the receiver has is not sent when it is this file's: a partial file of
          // another file with the same name, size and mtime must not end up mixed into this
          // one. (Read locally, at disk speed; only what differs crosses the network.)
          if (!sending && c < have.length && hex === have[c]) {
            if (performance.now() - lastWrite >= waitEveryMs) {
              lastWrite = performance.now();
              await channel.write(encodeFrame(FrameType.WAIT, new TextEncoder().encode("{}")));
            }
            return {};
          }
          sending = true;
          lastWrite = performance.now();
          if (entry.size === 0) return {};
          frame.set(encodeDataHeader({ file: index, chunk: c, sha256: digest }, length));
          sent += length;
          bytes += length;
          done += length;
          options.onProgress?.(done, total);
          return { write: channel.write(frame) };
        });
        hashed = step;
        const taken = step.then(({ write }) => write);
        taken.catch(() => {}); // awaited before the buffer's reuse; a failure surfaces there
        inFlight[slot] = taken;
      }
      await hashed;
      // Written to while it was read (its mtime or ctime moved): what went out may be a mix of
      // two versions, so it is not confirmed.
      if (fileIdentity(offer.sources[index]!, await file.stat()) !== identity) {
        throw new TransferError(`${entry.path} changed while it was being sent; send it again`);
      }
      const rootHex = manifestRoot(hashes);
      const sha256 = hashes.at(-1)!;
      await channel.write(jsonFrame(FrameType.FILE_END, { file: index, root: rootHex, sha256 }));
      files.push({
        path: entry.path,
        savedAs: null,
        bytes: entry.size,
        sha256,
        root: rootHex,
        sent,
      });
      (files.at(-1) as SentFile & { index?: number }).index = index;
    }
    await Promise.all(inFlight);
    await channel.write(jsonFrame(FrameType.DONE, {}));
    // The reader ends at DONE, or at the receiver's ERROR (which is thrown just below).
    // Bounded by the idle timeout (the receiver sends WAIT while it re-reads a resumed file);
    // a channel without one gets a fixed bound.
    const last = Promise.race([doneReceived, reader]);
    await (idle ? last : withTimeout(last, timeoutMs * 6));
  } catch (error) {
    for (const cache of caches) cache.close();
    const local = !receiverError && !(error instanceof ConnectionClosed);
    if (local) {
      // A failure on this side (a file that changed or shrank): the receiver is told and the
      // connection ends (it keeps what arrived for a resume).
      const message = error instanceof Error ? error.message : String(error);
      await channel.write(jsonFrame(FrameType.ERROR, { message })).catch(() => {});
      channel.close();
    }
    await reader;
    // Our own close ends the reader with "the peer closed the connection": a failure of this
    // side (a TransferError of ours, e.g. a file that changed) is the cause. A failed write (the
    // receiver died) is not ours: the reader says what happened to the connection.
    if (local && error instanceof TransferError) throw error;
    if (receiverError) throw receiverError;
    if (error instanceof ConnectionClosed) {
      throw new TransferError(`the connection to the receiver was lost: ${error.message}`);
    }
    throw error;
  }
  for (const cache of caches) cache.close();
  if (receiverError) throw receiverError;
  // Every file is saved: their hash caches are of no more use.
  for (const cache of caches) await cache.remove();
  for (const f of files as (SentFile & { index?: number })[]) {
    if (f.index !== undefined) {
      f.savedAs = saved.get(f.index)?.name ?? null;
    }
    delete f.index;
  }
  return {
    files,
    bytes,
    totalBytes: offer.totalBytes,
    bytesRead,
    seconds: (performance.now() - started) / 1000,
    skippedLinks: offer.skippedLinks,
    refusedLinks: plans.flatMap((p, i) =>
      offer.entries[i]!.type === "symlink" && typeof p.reason === "string"
        ? [peerMessage(p.reason)]
        : []
    ),
  };
}

/** A plan of the ANSWER: a known action, `have` a list of [chunk index, sha256 hex]. */
function validPlan(plan: unknown): boolean {
  if (typeof plan !== "object" || plan === null) return false;
  const p = plan as Record<string, unknown>;
  if (!["send", "skip", "compare", "link"].includes(p.action as string)) return false;
  if (p.reason !== undefined && typeof p.reason !== "string") return false;
  if (p.action === "compare" && (typeof p.root !== "string" || !HEX64.test(p.root))) {
    return false;
  }
  // `have`: chunks 0 … k−1 in order (chained hashes: a receiver holds a prefix).
  return Array.isArray(p.have) &&
    p.have.every((h, i) =>
      Array.isArray(h) && h.length === 2 && h[0] === i && typeof h[1] === "string" &&
      HEX64.test(h[1])
    );
}

const HEX64 = /^[0-9a-f]{64}$/;

async function readFull(file: Deno.FsFile, buffer: Uint8Array, name: string): Promise<void> {
  let at = 0;
  while (at < buffer.length) {
    const n = await file.read(buffer.subarray(at));
    if (n === null) throw new TransferError(`${name} became shorter while it was being sent`);
    at += n;
  }
}
