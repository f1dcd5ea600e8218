/**
 * file-send's frames, inside TLS. Every frame is a 5-byte header and a payload:
 *
 *     offset 0  u8      type (FrameType)
 *     offset 1  u32 BE  payload length (≤ MAX_CONTROL_SIZE, DATA ≤ DATA_HEADER_SIZE + CHUNK_SIZE)
 *     offset 5  …       payload
 *
 * Control payloads are UTF-8 JSON objects, except PAKE (a 65-byte share, plus B's 32-byte
 * confirmation) and CONFIRM (A's 32-byte confirmation). A DATA payload is
 *
 *     offset 0  u32 BE  file index in the offer
 *     offset 4  u32 BE  chunk index (the chunk starts at index × CHUNK_SIZE)
 *     offset 8  32      the chunk's chained hash: SHA-256 of the file up to the chunk's end
 *     offset 40 …       the chunk's bytes (CHUNK_SIZE, the file's last chunk may be shorter)
 *
 * The length is checked against the type's limit before anything is allocated.
 *
 * @module
 */

import { escapePeerText } from "../cli/output.ts";

/** Frame types. */
export const FrameType = {
  /** A → B: A's SPAKE2 share. B → A: B's share and B's confirmation. */
  PAKE: 1,
  /** A → B: A's confirmation MAC. */
  CONFIRM: 2,
  /** Sender → receiver: the offer (JSON {@linkcode Offer}). */
  OFFER: 3,
  /** Receiver → sender: the answer (JSON). */
  ANSWER: 4,
  /** Sender → receiver: one chunk. */
  DATA: 5,
  /** Sender → receiver: a file's end (JSON {file, root}). */
  FILE_END: 6,
  /** Receiver → sender: a file is saved (JSON {file, name, sha256}). */
  FILE_OK: 7,
  /** Sender → receiver: all files sent. Receiver → sender: all saved. */
  DONE: 8,
  /** Receiver → sender: still working (re-reading a resumed file), JSON {}; keeps the
   * sender's idle timeout from firing. */
  WAIT: 9,
  /** Either way: the session ends with this error (JSON {message}). */
  ERROR: 15,
} as const;

/** A frame type's number. */
export type FrameTypeNumber = typeof FrameType[keyof typeof FrameType];

/** Bytes in a frame header. */
export const HEADER_SIZE = 5;
/** Fixed chunk size: 4 MiB. */
export const CHUNK_SIZE = 4 * 1024 * 1024;
/** Bytes in front of a DATA frame's chunk. */
export const DATA_HEADER_SIZE = 40;
/** Largest control payload (an offer of a few thousand names fits). */
export const MAX_CONTROL_SIZE = 8 * 1024 * 1024;

/** A malformed or oversized frame. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** The largest payload a frame of `type` may carry. */
export function maxPayload(type: number): number {
  switch (type) {
    case FrameType.DATA:
      return DATA_HEADER_SIZE + CHUNK_SIZE;
    case FrameType.PAKE:
    case FrameType.CONFIRM:
    case FrameType.WAIT:
      return 128;
    case FrameType.OFFER:
    case FrameType.ANSWER:
    case FrameType.FILE_END:
    case FrameType.FILE_OK:
    case FrameType.DONE:
    case FrameType.ERROR:
      return MAX_CONTROL_SIZE;
    default:
      throw new FrameError(`Cannot decode frame: unknown type ${type}`);
  }
}

/** Encodes a frame header for a payload of `length` bytes. */
export function encodeHeader(type: FrameTypeNumber, length: number): Uint8Array {
  if (length > maxPayload(type)) {
    throw new FrameError(`Cannot encode frame: length ${length} exceeds ${maxPayload(type)}`);
  }
  const out = new Uint8Array(HEADER_SIZE);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, length);
  return out;
}

/** Encodes a whole control frame (header and payload). */
export function encodeFrame(type: FrameTypeNumber, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  out.set(encodeHeader(type, payload.length));
  out.set(payload, HEADER_SIZE);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a JSON control frame. */
export function jsonFrame(type: FrameTypeNumber, value: unknown): Uint8Array {
  return encodeFrame(type, encoder.encode(JSON.stringify(value)));
}

/** Parses a JSON control payload into an object. */
export function parseJson(payload: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch (cause) {
    throw new FrameError("Cannot decode frame: payload is not UTF-8 JSON", { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FrameError("Cannot decode frame: payload is not a JSON object");
  }
  return value as Record<string, unknown>;
}

/** Longest peer-supplied message (ERROR, a refusal's reason) shown, in characters. */
export const MAX_PEER_MESSAGE = 300;

/**
 * A message from the peer made safe to print: a string, control/escape characters escaped
 * (no terminal escapes from a hostile peer), at most {@linkcode MAX_PEER_MESSAGE} characters.
 */
export function peerMessage(value: unknown): string {
  const text = escapePeerText(typeof value === "string" ? value : "(no message)");
  return text.length > MAX_PEER_MESSAGE ? `${text.slice(0, MAX_PEER_MESSAGE)}…` : text;
}

/** The header of a DATA frame. */
export interface DataHeader {
  file: number;
  chunk: number;
  /** The chunk's chained hash (32 bytes): SHA-256 of the file from its start to the chunk's end. */
  sha256: Uint8Array;
}

/** Encodes a DATA frame's header (frame header + 40 bytes) for a chunk of `length` bytes. */
export function encodeDataHeader(h: DataHeader, length: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + DATA_HEADER_SIZE);
  out.set(encodeHeader(FrameType.DATA, DATA_HEADER_SIZE + length));
  const view = new DataView(out.buffer);
  view.setUint32(HEADER_SIZE, h.file);
  view.setUint32(HEADER_SIZE + 4, h.chunk);
  out.set(h.sha256, HEADER_SIZE + 8);
  return out;
}

/** Decodes the 40 bytes in front of a chunk. */
export function decodeDataHeader(bytes: Uint8Array): DataHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { file: view.getUint32(0), chunk: view.getUint32(4), sha256: bytes.slice(8, 40) };
}
