/**
 * The soundsock/2 frame: one format for UDP datagrams (one frame per datagram) and for TCP/TLS
 * byte streams (frames back to back). docs/PROTOCOL.md is the normative description.
 *
 * ```text
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------+---------------+---------------+---------------+
 * |  magic 'S'    |  magic 'K'    |  version = 2  |     type      |   0
 * +---------------+---------------+---------------+---------------+
 * |             flags             |       reserved (zero)         |   4
 * +---------------+---------------+---------------+---------------+
 * |                           stream id                           |   8
 * +---------------------------------------------------------------+
 * |                        sequence number                        |  12
 * +---------------------------------------------------------------+
 * |                 media timestamp (microseconds)                |  16
 * |                         (64 bits)                             |  20
 * +---------------------------------------------------------------+
 * |                        payload length                         |  24
 * +---------------------------------------------------------------+
 * |            CRC-32C of bytes 0..27 and the payload             |  28
 * +---------------------------------------------------------------+
 * |                    payload (length bytes) ...                 |  32
 * ```
 * All integers are unsigned big-endian.
 *
 * @module
 */

import { crc32c } from "./crc32c.ts";

/** First two bytes of every frame: ASCII "SK". */
export const MAGIC = 0x534b;
/**
 * Protocol version carried in byte 2; this module speaks soundsock/2. The single source of the
 * version for every transport: senders write it, receivers reject any other. (2 added the UDP
 * return-address check: CHALLENGE, cookies and session tokens, docs/PROTOCOL.md §5.0.)
 */
export const VERSION = 2;
/** Protocol name with version, as printed by tools and used in docs. */
export const PROTOCOL_NAME = `soundsock/${VERSION}`;
/** Size of the fixed frame header in bytes. */
export const HEADER_SIZE = 32;
/**
 * Default largest payload in a UDP datagram. 1200 + 32 header + 8 UDP + 40 IPv6 stays under
 * the 1280-byte IPv6 minimum MTU, so datagrams are never fragmented on any path.
 */
export const UDP_MAX_PAYLOAD = 1200;
/** Largest frame (header + payload) on a TCP/TLS stream: 1 MiB. */
export const MAX_FRAME_SIZE = 1024 * 1024;
/** Largest payload on a TCP/TLS stream. */
export const STREAM_MAX_PAYLOAD = MAX_FRAME_SIZE - HEADER_SIZE;

/** Message types (byte 3). Every tool uses this one set; payload formats are in messages.ts. */
export const FrameType = {
  /** Client asks for something: JSON `{"op": ...}`. */
  REQUEST: 0x01,
  /** Server accepts a request that opens a stream or session. */
  ACCEPT: 0x02,
  /** Server refuses admission (full, bad request), with a reason. */
  REJECT: 0x03,
  /** Describes the stream that follows: title, codec, rate, size, hash. */
  STREAM_INFO: 0x04,
  /** Media or file bytes (binary payload). */
  DATA: 0x05,
  /** The stream ended normally. */
  END: 0x06,
  /** Something failed; the stream or request is over. */
  ERROR: 0x07,
  /** Keep-alive; radio listeners must send these. Empty payload. */
  HEARTBEAT: 0x08,
  /** The sender leaves. Empty payload or JSON `{"reason"}`. */
  BYE: 0x09,
  /** Answer to `list`: a page of the song library. */
  SONG_LIST: 0x0a,
  /** Answer to a radio `play` request. */
  PLAY_RESULT: 0x0b,
  /** Answer to `requests`: the radio's request queue, next first. */
  QUEUE: 0x0c,
  /** The radio's current song: answer to `now_playing`, and pushed at every song change. */
  NOW_PLAYING: 0x0d,
  /**
   * UDP: answer to a REQUEST whose source address is not yet proven, with a cookie the client
   * echoes in the REQUEST before anything else is sent to that address.
   */
  CHALLENGE: 0x0e,
  /** Relay overlay control on the TLS server link: JSON `{"msg": ...}` (PROTOCOL.md §9). */
  RELAY: 0x10,
  /** Relay: the server's Ed25519-signed hash list of the radio frames that follow (§9). */
  RELAY_MANIFEST: 0x11,
} as const;

/** A message type number. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

const TYPE_NAMES = new Map<number, string>(
  Object.entries(FrameType).map(([name, value]) => [value, name]),
);

/** Name of a frame type for logs and errors, e.g. `DATA`; unknown numbers print as `0x2a`. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, "0")}`;
}

/** Whether `type` is one of the defined {@linkcode FrameType} values. */
export function isFrameType(type: number): type is FrameType {
  return TYPE_NAMES.has(type);
}

/** Flag bits (bytes 4–5). Receivers ignore bits they do not know; senders set them to zero. */
export const FrameFlag = {
  /** First DATA frame of a new song in this stream: decoders reset here (radio song change). */
  SONG_START: 0x0001,
} as const;

/** One decoded frame. */
export interface Frame {
  /** Message type. */
  type: FrameType;
  /** Flag bits, see {@linkcode FrameFlag}. */
  flags: number;
  /** Stream (session) identifier chosen by the server; 0 before one is assigned. */
  streamId: number;
  /** DATA frame counter within the stream, from 0, wrapping at 2^32. */
  sequence: number;
  /** Media time of the payload's first sample in microseconds (0 for control frames). */
  timestamp: number;
  /** Payload bytes. */
  payload: Uint8Array;
}

/** Fields of a frame to encode; unset numbers default to 0, payload to empty. */
export type FrameInit = Partial<Omit<Frame, "type">> & { type: FrameType };

/** Why a frame was rejected; callers branch on this (count and ignore, or drop the peer). */
export type FrameErrorCode =
  | "magic"
  | "version"
  | "type"
  | "reserved"
  | "truncated"
  | "too_large"
  | "trailing"
  | "crc";

/** Bytes that are not a valid soundsock frame of this version. */
export class FrameError extends Error {
  /** What was wrong. */
  readonly code: FrameErrorCode;
  /** Creates the error; `message` is user-facing. */
  constructor(code: FrameErrorCode, message: string, options?: ErrorOptions) {
    super(`Cannot decode frame: ${message}`, options);
    this.name = "FrameError";
    this.code = code;
  }
}

/** Options for encoding and decoding. */
export interface FrameLimitOptions {
  /**
   * Largest payload accepted, in bytes: the transport's limit.
   * @default {UDP_MAX_PAYLOAD} for datagrams, {STREAM_MAX_PAYLOAD} for streams
   */
  maxPayload?: number;
}

/**
 * Encodes one frame.
 *
 * @throws {RangeError} if a field is out of range or the payload exceeds `maxPayload`.
 */
export function encodeFrame(frame: FrameInit, options: FrameLimitOptions = {}): Uint8Array {
  const payload = frame.payload ?? new Uint8Array(0);
  const maxPayload = options.maxPayload ?? STREAM_MAX_PAYLOAD;
  if (payload.length > maxPayload) {
    throw new RangeError(
      `Cannot encode ${frameTypeName(frame.type)} frame: payload of ${payload.length} bytes ` +
        `exceeds ${maxPayload}`,
    );
  }
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  writeHeader(out, frame, payload);
  out.set(payload, HEADER_SIZE);
  return out;
}

/**
 * Writes a header for `payload` into `out[0..32)` and the CRC over both. Exposed for senders
 * that reuse one buffer per packet (the radio writes each packet once for all listeners).
 */
export function writeHeader(out: Uint8Array, frame: FrameInit, payload: Uint8Array): void {
  const flags = frame.flags ?? 0;
  const streamId = frame.streamId ?? 0;
  const sequence = frame.sequence ?? 0;
  const timestamp = frame.timestamp ?? 0;
  if (!isFrameType(frame.type)) throw new RangeError(`Unknown frame type ${frame.type}`);
  checkUint(flags, 0xffff, "flags");
  checkUint(streamId, 0xffffffff, "stream id");
  checkUint(sequence, 0xffffffff, "sequence");
  checkUint(timestamp, Number.MAX_SAFE_INTEGER, "timestamp");
  const view = new DataView(out.buffer, out.byteOffset, HEADER_SIZE);
  view.setUint16(0, MAGIC);
  view.setUint8(2, VERSION);
  view.setUint8(3, frame.type);
  view.setUint16(4, flags);
  view.setUint16(6, 0);
  view.setUint32(8, streamId);
  view.setUint32(12, sequence);
  view.setBigUint64(16, BigInt(timestamp));
  view.setUint32(24, payload.length);
  const crc = crc32c(payload, crc32c(out.subarray(0, 28)));
  view.setUint32(28, crc);
}

function checkUint(value: number, max: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`Cannot encode frame: ${field} ${value} is not an integer in 0..${max}`);
  }
}

/** Header fields parsed and validated, before the payload is looked at. */
export interface FrameHeader {
  /** Message type. */
  type: FrameType;
  /** Flag bits. */
  flags: number;
  /** Stream identifier. */
  streamId: number;
  /** Sequence number. */
  sequence: number;
  /** Media timestamp in microseconds. */
  timestamp: number;
  /** Declared payload length. */
  payloadLength: number;
  /** Declared CRC-32C. */
  crc: number;
}

/**
 * Parses and validates the 32-byte header at the start of `bytes`: magic, version, type,
 * reserved bits and the length limit are checked before any payload is read or allocated.
 *
 * @throws {FrameError} for anything that is not a valid header.
 */
export function parseHeader(bytes: Uint8Array, maxPayload: number): FrameHeader {
  if (bytes.length < HEADER_SIZE) {
    throw new FrameError(
      "truncated",
      `${bytes.length} bytes is shorter than the ${HEADER_SIZE}-byte header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const magic = view.getUint16(0);
  if (magic !== MAGIC) {
    throw new FrameError("magic", `bad magic 0x${magic.toString(16).padStart(4, "0")}`);
  }
  const version = view.getUint8(2);
  if (version !== VERSION) {
    throw new FrameError("version", `unsupported version ${version} (this is ${PROTOCOL_NAME})`);
  }
  const type = view.getUint8(3);
  if (!isFrameType(type)) throw new FrameError("type", `unknown type ${frameTypeName(type)}`);
  if (view.getUint16(6) !== 0) throw new FrameError("reserved", "reserved bytes are not zero");
  const payloadLength = view.getUint32(24);
  if (payloadLength > maxPayload) {
    throw new FrameError("too_large", `length ${payloadLength} exceeds ${maxPayload}`);
  }
  const timestamp = view.getBigUint64(16);
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FrameError("too_large", `timestamp ${timestamp} exceeds 2^53-1`);
  }
  return {
    type,
    flags: view.getUint16(4),
    streamId: view.getUint32(8),
    sequence: view.getUint32(12),
    timestamp: Number(timestamp),
    payloadLength,
    crc: view.getUint32(28),
  };
}

/**
 * Checks the CRC of a complete frame whose header is `header` and returns the frame.
 * `frameBytes` must hold exactly HEADER_SIZE + payloadLength bytes; the payload is a view
 * into it (callers copy if they keep the frame beyond the buffer's life).
 */
export function finishFrame(header: FrameHeader, frameBytes: Uint8Array): Frame {
  const payload = frameBytes.subarray(HEADER_SIZE, HEADER_SIZE + header.payloadLength);
  const crc = crc32c(payload, crc32c(frameBytes.subarray(0, 28)));
  if (crc !== header.crc) {
    throw new FrameError(
      "crc",
      `CRC-32C mismatch (frame says 0x${hex32(header.crc)}, bytes give 0x${hex32(crc)})`,
    );
  }
  return {
    type: header.type,
    flags: header.flags,
    streamId: header.streamId,
    sequence: header.sequence,
    timestamp: header.timestamp,
    payload,
  };
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/**
 * Decodes a datagram holding exactly one frame. The returned payload is a view into `datagram`.
 *
 * @throws {FrameError} for wrong magic or version, unknown type, truncation, a length over
 * `maxPayload`, trailing bytes, or a CRC mismatch.
 */
export function decodeDatagram(datagram: Uint8Array, options: FrameLimitOptions = {}): Frame {
  const header = parseHeader(datagram, options.maxPayload ?? UDP_MAX_PAYLOAD);
  const expected = HEADER_SIZE + header.payloadLength;
  if (datagram.length < expected) {
    throw new FrameError(
      "truncated",
      `length says ${header.payloadLength} payload bytes, datagram has ${
        datagram.length - HEADER_SIZE
      }`,
    );
  }
  if (datagram.length > expected) {
    throw new FrameError(
      "trailing",
      `${datagram.length - expected} bytes after the ${header.payloadLength}-byte payload`,
    );
  }
  return finishFrame(header, datagram);
}
