/**
 * Payloads of the soundsock/2 control messages. Control payloads are UTF-8 JSON objects (easy
 * to read in Wireshark and to produce from any language); DATA payloads are binary and
 * HEARTBEAT is empty. Every reader here validates field types and bounds and throws
 * {@linkcode MessageError} — a peer's JSON is never trusted as-is.
 *
 * @module
 */

import { encodeFrame, type Frame, FrameType, frameTypeName } from "./frame.ts";

/** Largest control payload accepted on any transport (a song list page stays well below). */
export const MAX_CONTROL_PAYLOAD = 64 * 1024;
/** Longest song name or title, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 255;
/** Longest BYE `reason` (characters), as REJECT's and ERROR's texts are bounded. */
export const MAX_REASON_LENGTH = 1024;
/**
 * UDP cookies (CHALLENGE, REQUEST `cookie`) and session tokens (ACCEPT, HEARTBEAT, BYE `token`)
 * are 16 bytes written as exactly 32 lowercase hex digits.
 */
export const SECRET_BYTES = 16;
const SECRET_HEX = /^[0-9a-f]{32}$/;

/**
 * Codecs a stream can carry. `pcm_s16le`: interleaved signed 16-bit little-endian samples;
 * `opus`: the radio's Opus frames, `[u16 BE length][packet]`… per DATA (PROTOCOL.md §4).
 */
export type Codec = "mp3" | "wav" | "flac" | "pcm_s16le" | "opus";
const CODECS: readonly Codec[] = ["mp3", "wav", "flac", "pcm_s16le", "opus"];

/** REQUEST payload: what a client asks for. */
export type Request =
  /** A page of the song list, starting at `offset` (UDP pages to fit datagrams). */
  | { op: "list"; offset?: number }
  /** Stream a song from its start (UDP: decodable packets, paced in real time). */
  | { op: "song"; song: string }
  /** Download a song's file bytes (TLS), optionally from a byte offset. */
  | { op: "get"; song: string; offset?: number }
  /** Join the radio at its live position. */
  | { op: "radio" }
  /** Ask the radio to play a song (request queue). */
  | { op: "play"; song: string }
  /** The radio's request queue. */
  | { op: "requests" }
  /** The radio's current song. */
  | { op: "now_playing" };

/** ACCEPT payload. */
export interface Accept {
  /** What was accepted. */
  op: Request["op"];
  /** Largest DATA payload the server will send. */
  maxPayload: number;
  /** For radio on UDP: send a HEARTBEAT at least this often (milliseconds). */
  heartbeatMs?: number;
  /** UDP: the session's secret; HEARTBEAT and BYE carry it (32 lowercase hex digits). */
  token?: string;
}

/** CHALLENGE payload (UDP): echo `cookie` in the REQUEST to prove the source address. */
export interface Challenge {
  /** Opaque, 32 lowercase hex digits. */
  cookie: string;
}

/** HEARTBEAT / BYE payload fields (all optional; an empty payload has none). */
export interface SessionControl {
  /** UDP: the token from ACCEPT. */
  token?: string;
  /** HEARTBEAT on an on-demand UDP stream: next sequence number expected. */
  ack?: number;
  /** BYE: why the sender leaves. */
  reason?: string;
}

/** REJECT payload. `code` is stable for programs, `reason` is for people. */
export interface Reject {
  code: "server_full" | "bad_request" | "busy";
  reason: string;
}

/** STREAM_INFO payload. */
export interface StreamInfo {
  title: string;
  codec: Codec;
  sampleRate: number;
  channels: number;
  /** Duration in milliseconds (rounded). */
  durationMs: number;
  /** Total sample frames per channel, when known. */
  frames?: number;
  /**
   * Sample frames to drop from the start of the decoded audio: the MP3 encoder and decoder
   * delay, so that what plays matches the source exactly (the Xing/LAME frame is not sent).
   */
  skip?: number;
  /** Number of DATA packets that will follow (on-demand streams). */
  packets?: number;
  /** Size in bytes of what DATA frames carry in total (file downloads). */
  size?: number;
  /** SHA-256 of those bytes, lowercase hex (file downloads). */
  sha256?: string;
  /** Byte offset the DATA starts from (resumed download). */
  offset?: number;
  /** True for a live stream (radio, microphone) that has no end. */
  live?: boolean;
  /** Opus: duration of one Opus frame in ms (the radio: 20). */
  frameMs?: number;
  /**
   * A live capture (mic-broadcast): wall-clock time at which the stream's sample 0 was
   * captured, in µs since the Unix epoch on the sender's clock; a DATA frame's capture time is
   * `captureEpochUs + timestamp` (docs/PROTOCOL.md §5.4).
   */
  captureEpochUs?: number;
}

/** END payload. */
export interface End {
  /** DATA packets sent in this stream. */
  packets: number;
  /** DATA payload bytes sent in this stream. */
  bytes: number;
}

/** ERROR payload. */
export interface ErrorBody {
  code: "not_found" | "bad_request" | "internal" | "timeout" | "too_slow" | "shutdown";
  message: string;
}

/** One entry of a song list. */
export interface SongEntry {
  /** 1-based position in the library, usable in place of the name. */
  index: number;
  /** File name inside the songs folder, e.g. `morning-arpeggio.mp3`. */
  title: string;
  codec: Codec;
  durationMs: number;
  size: number;
}

/** SONG_LIST payload: a page of the library. */
export interface SongList {
  /** Number of songs in the whole library. */
  total: number;
  /** Index (0-based) of the first entry of this page in the whole list. */
  offset: number;
  songs: SongEntry[];
}

/** PLAY_RESULT payload. */
export interface PlayResult {
  result: "requested" | "already_requested" | "not_found";
  /** Exactly one of: `Song X has been requested!`, `Song has already been requested`, `Song does not exist`. */
  message: string;
}

/** One queued request. */
export interface QueueEntry {
  title: string;
  durationMs: number;
}

/** QUEUE payload, next song first. */
export interface Queue {
  queue: QueueEntry[];
}

/** NOW_PLAYING payload. */
export interface NowPlaying {
  title: string;
  durationMs: number;
  /** How far into the song the station is, in milliseconds. */
  positionMs: number;
  /** Why this song is playing. */
  source: "request" | "random";
}

/** A control payload that is not valid for its message type. */
export class MessageError extends Error {
  /** Creates the error; `message` is user-facing. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MessageError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a JSON control payload. */
export function encodeJson(body: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(body));
}

/** Encodes a control frame with a JSON payload; header fields default to 0. */
export function encodeControl(
  type: FrameType,
  body: unknown,
  header: { streamId?: number; sequence?: number; maxPayload?: number } = {},
): Uint8Array {
  return encodeFrame({
    type,
    streamId: header.streamId ?? 0,
    sequence: header.sequence ?? 0,
    payload: body === undefined ? new Uint8Array(0) : encodeJson(body),
  }, { maxPayload: header.maxPayload ?? MAX_CONTROL_PAYLOAD });
}

/** Parses a frame's payload as a JSON object. */
export function parseJsonObject(frame: Frame): Record<string, unknown> {
  const what = frameTypeName(frame.type);
  if (frame.payload.length > MAX_CONTROL_PAYLOAD) {
    throw new MessageError(`${what} payload of ${frame.payload.length} bytes is too large`);
  }
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(frame.payload));
  } catch (cause) {
    throw new MessageError(`${what} payload is not UTF-8 JSON`, { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MessageError(`${what} payload is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

// Field readers: each names the message and field in its error.

function str(o: Record<string, unknown>, key: string, what: string, max = MAX_NAME_LENGTH) {
  const v = o[key];
  if (typeof v !== "string" || v.length === 0 || v.length > max) {
    throw new MessageError(`${what}: "${key}" must be a string of 1..${max} characters`);
  }
  return v;
}

function int(o: Record<string, unknown>, key: string, what: string, max = 2 ** 53 - 1) {
  const v = o[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw new MessageError(`${what}: "${key}" must be an integer in 0..${max}`);
  }
  return v;
}

function optStr(o: Record<string, unknown>, key: string, what: string, max?: number) {
  return o[key] === undefined ? undefined : str(o, key, what, max);
}

function optInt(o: Record<string, unknown>, key: string, what: string, max?: number) {
  return o[key] === undefined ? undefined : int(o, key, what, max);
}

function secret(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== "string" || !SECRET_HEX.test(v)) {
    throw new MessageError(`${what}: "${key}" must be 32 lowercase hex digits`);
  }
  return v;
}

function optSecret(o: Record<string, unknown>, key: string, what: string) {
  return o[key] === undefined ? undefined : secret(o, key, what);
}

function oneOf<T extends string>(
  o: Record<string, unknown>,
  key: string,
  what: string,
  allowed: readonly T[],
): T {
  const v = o[key];
  if (typeof v !== "string" || !allowed.includes(v as T)) {
    throw new MessageError(`${what}: "${key}" must be one of ${allowed.join(", ")}`);
  }
  return v as T;
}

function withOptional<T extends object>(base: T, extra: Record<string, unknown>): T {
  for (const [k, v] of Object.entries(extra)) {
    if (v !== undefined) (base as Record<string, unknown>)[k] = v;
  }
  return base;
}

const REQUEST_OPS = ["list", "song", "get", "radio", "play", "requests", "now_playing"] as const;

/** Reads a REQUEST payload. */
export function readRequest(frame: Frame): Request {
  return requestFrom(parseJsonObject(frame));
}

/**
 * Reads a REQUEST received over UDP: the request and the `cookie` it echoes from a CHALLENGE,
 * if any (docs/PROTOCOL.md §5.0).
 */
export function readUdpRequest(frame: Frame): { request: Request; cookie: string | undefined } {
  const o = parseJsonObject(frame);
  return { request: requestFrom(o), cookie: optSecret(o, "cookie", "REQUEST") };
}

function requestFrom(o: Record<string, unknown>): Request {
  const what = "REQUEST";
  const op = oneOf(o, "op", what, REQUEST_OPS);
  switch (op) {
    case "list":
      return withOptional({ op }, { offset: optInt(o, "offset", what) });
    case "song":
    case "play":
      return { op, song: str(o, "song", what) };
    case "get":
      return withOptional({ op, song: str(o, "song", what) }, {
        offset: optInt(o, "offset", what),
      });
    case "radio":
    case "requests":
    case "now_playing":
      return { op };
  }
}

/** Reads an ACCEPT payload. */
export function readAccept(frame: Frame): Accept {
  const o = parseJsonObject(frame);
  const what = "ACCEPT";
  return withOptional(
    { op: oneOf(o, "op", what, REQUEST_OPS), maxPayload: int(o, "maxPayload", what) },
    { heartbeatMs: optInt(o, "heartbeatMs", what), token: optSecret(o, "token", what) },
  );
}

/** Reads a CHALLENGE payload. */
export function readChallenge(frame: Frame): Challenge {
  return { cookie: secret(parseJsonObject(frame), "cookie", "CHALLENGE") };
}

/** Reads a HEARTBEAT or BYE payload: empty, or a JSON object with optional fields. */
export function readSessionControl(frame: Frame): SessionControl {
  if (frame.payload.length === 0) return {};
  const o = parseJsonObject(frame);
  const what = frameTypeName(frame.type);
  return withOptional({}, {
    token: optSecret(o, "token", what),
    ack: optInt(o, "ack", what),
    reason: optStr(o, "reason", what, MAX_REASON_LENGTH),
  });
}

/** Reads a REJECT payload. */
export function readReject(frame: Frame): Reject {
  const o = parseJsonObject(frame);
  return {
    code: oneOf(o, "code", "REJECT", ["server_full", "bad_request", "busy"] as const),
    reason: str(o, "reason", "REJECT", 1024),
  };
}

/** Lowest STREAM_INFO `sampleRate` accepted (Hz). */
export const MIN_SAMPLE_RATE = 8000;
/** Highest STREAM_INFO `sampleRate` accepted (Hz). */
export const MAX_SAMPLE_RATE = 192_000;
/** Most STREAM_INFO `channels` accepted. */
export const MAX_CHANNELS = 8;

/** Reads a STREAM_INFO payload; rates, channels and sizes out of range are refused. */
export function readStreamInfo(frame: Frame): StreamInfo {
  const o = parseJsonObject(frame);
  const what = "STREAM_INFO";
  const info: StreamInfo = {
    title: str(o, "title", what),
    codec: oneOf(o, "codec", what, CODECS),
    sampleRate: int(o, "sampleRate", what),
    channels: int(o, "channels", what),
    durationMs: int(o, "durationMs", what),
  };
  // A rate or channel count no audio file has is a lie that would open (and fill) an output
  // at that format: refuse it here, with the field named.
  if (info.sampleRate < MIN_SAMPLE_RATE || info.sampleRate > MAX_SAMPLE_RATE) {
    throw new MessageError(
      `${what}: "sampleRate" must be an integer in ${MIN_SAMPLE_RATE}..${MAX_SAMPLE_RATE}`,
    );
  }
  if (info.channels === 0 || info.channels > MAX_CHANNELS) {
    throw new MessageError(`${what}: "channels" must be an integer in 1..${MAX_CHANNELS}`);
  }
  const sha256 = o.sha256;
  if (sha256 !== undefined && (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256))) {
    throw new MessageError(`${what}: "sha256" must be 64 lowercase hex digits`);
  }
  if (o.live !== undefined && typeof o.live !== "boolean") {
    throw new MessageError(`${what}: "live" must be a boolean`);
  }
  const result = withOptional(info, {
    frames: optInt(o, "frames", what),
    skip: optInt(o, "skip", what),
    packets: optInt(o, "packets", what),
    size: optInt(o, "size", what),
    sha256,
    offset: optInt(o, "offset", what),
    live: o.live,
    frameMs: optInt(o, "frameMs", what),
    captureEpochUs: optInt(o, "captureEpochUs", what),
  });
  if (result.offset !== undefined && result.size !== undefined && result.offset > result.size) {
    throw new MessageError(`${what}: "offset" is beyond "size"`);
  }
  return result;
}

/** Reads an END payload. */
export function readEnd(frame: Frame): End {
  const o = parseJsonObject(frame);
  return { packets: int(o, "packets", "END"), bytes: int(o, "bytes", "END") };
}

const ERROR_CODES = [
  "not_found",
  "bad_request",
  "internal",
  "timeout",
  "too_slow",
  "shutdown",
] as const;

/** Reads an ERROR payload. */
export function readError(frame: Frame): ErrorBody {
  const o = parseJsonObject(frame);
  return {
    code: oneOf(o, "code", "ERROR", ERROR_CODES),
    message: str(o, "message", "ERROR", 1024),
  };
}

function readSongEntry(v: unknown): SongEntry {
  const what = "SONG_LIST entry";
  if (typeof v !== "object" || v === null) throw new MessageError(`${what} is not an object`);
  const o = v as Record<string, unknown>;
  return {
    index: int(o, "index", what),
    title: str(o, "title", what),
    codec: oneOf(o, "codec", what, CODECS),
    durationMs: int(o, "durationMs", what),
    size: int(o, "size", what),
  };
}

/** Reads a SONG_LIST payload. */
export function readSongList(frame: Frame): SongList {
  const o = parseJsonObject(frame);
  if (!Array.isArray(o.songs)) throw new MessageError(`SONG_LIST: "songs" must be an array`);
  return {
    total: int(o, "total", "SONG_LIST"),
    offset: int(o, "offset", "SONG_LIST"),
    songs: o.songs.map(readSongEntry),
  };
}

/** Reads a PLAY_RESULT payload. */
export function readPlayResult(frame: Frame): PlayResult {
  const o = parseJsonObject(frame);
  return {
    result: oneOf(
      o,
      "result",
      "PLAY_RESULT",
      [
        "requested",
        "already_requested",
        "not_found",
      ] as const,
    ),
    message: str(o, "message", "PLAY_RESULT", 1024),
  };
}

/** Reads a QUEUE payload. */
export function readQueue(frame: Frame): Queue {
  const o = parseJsonObject(frame);
  if (!Array.isArray(o.queue)) throw new MessageError(`QUEUE: "queue" must be an array`);
  return {
    queue: o.queue.map((v: unknown) => {
      if (typeof v !== "object" || v === null) {
        throw new MessageError("QUEUE entry is not an object");
      }
      const e = v as Record<string, unknown>;
      return {
        title: str(e, "title", "QUEUE entry"),
        durationMs: int(e, "durationMs", "QUEUE entry"),
      };
    }),
  };
}

/** Reads a NOW_PLAYING payload. */
export function readNowPlaying(frame: Frame): NowPlaying {
  const o = parseJsonObject(frame);
  const what = "NOW_PLAYING";
  return {
    title: str(o, "title", what),
    durationMs: int(o, "durationMs", what),
    positionMs: int(o, "positionMs", what),
    source: oneOf(o, "source", what, ["request", "random"] as const),
  };
}

/** The three answers to a radio `play` request, word for word. */
export const PLAY_MESSAGES = {
  requested: (title: string) => `Song ${title} has been requested!`,
  already_requested: () => "Song has already been requested",
  not_found: () => "Song does not exist",
} as const;
