/**
 * RELAY control messages (frame type 0x10, JSON, stream id 0; docs/PROTOCOL.md §9.1): on the
 * TLS link between a relaying listener and the server (`join`, `leave`, `report`, `assign`),
 * and the first frame a child sends its relay parent (`hello`).
 *
 * @module
 */

import { type Frame, FrameType } from "../wire/frame.ts";
import { encodeControl, MessageError, parseJsonObject } from "../wire/messages.ts";
import { PUBLIC_KEY_BYTES } from "./signing.ts";

/** Where a relay parent listens. */
export interface RelayPeer {
  /** Overlay node id. */
  node: number;
  host: string;
  port: number;
}

/** What the server tells a relaying listener (again whenever any of it changes). */
export interface Assign {
  msg: "assign";
  /** This listener's node id. */
  node: number;
  /** The station's stream id (in every radio frame and manifest). */
  stream: number;
  /** The server's Ed25519 public key, raw 32 bytes in base64. */
  key: string;
  /** Lowest manifest index still acceptable (the server's next index at join). */
  manifest: number;
  /** This node's secret for its `hello` to a relay parent: 32 lowercase hex digits. */
  token: string;
  /** Relay parent; null: the server itself streams on this TLS link. */
  parent: RelayPeer | null;
  /** Where to go when the parent goes silent; null: the server. */
  backup: RelayPeer | null;
  /** Tokens of the nodes this one may serve (its children and those that fall back to it). */
  accept: string[];
}

/** A message of the relay protocol. */
export type RelayMessage =
  | { msg: "join"; port: number; host?: string }
  | { msg: "leave" }
  | { msg: "report"; node: number; reason: "silent" | "forged" }
  | { msg: "hello"; token: string; have?: number }
  | Assign;

const TOKEN = /^[0-9a-f]{32}$/;

function fail(text: string): never {
  throw new MessageError(`Invalid RELAY message: ${text}`);
}

function int(o: Record<string, unknown>, k: string, max = 2 ** 32 - 1): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    fail(`"${k}" must be an integer in 0..${max}`);
  }
  return v;
}

function host(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  if (typeof v !== "string" || v.length < 1 || v.length > 255 || /[\s/\\]/.test(v)) {
    fail(`"${k}" must be a host name or address`);
  }
  return v;
}

function token(v: unknown, k: string): string {
  if (typeof v !== "string" || !TOKEN.test(v)) fail(`"${k}" must be 32 lowercase hex digits`);
  return v;
}

function peer(v: unknown, k: string): RelayPeer | null {
  if (v === null) return null;
  if (typeof v !== "object" || Array.isArray(v)) fail(`"${k}" must be an object or null`);
  const o = v as Record<string, unknown>;
  return { node: int(o, "node"), host: host(o, "host"), port: int(o, "port", 65535) };
}

/**
 * Reads a RELAY frame.
 * @throws {MessageError} for anything that is not one of the messages of §9.1
 */
export function readRelay(frame: Frame): RelayMessage {
  if (frame.type !== FrameType.RELAY) fail("not a RELAY frame");
  const o = parseJsonObject(frame);
  switch (o.msg) {
    case "join": {
      const m: RelayMessage = { msg: "join", port: int(o, "port", 65535) };
      if (o.host !== undefined) m.host = host(o, "host");
      return m;
    }
    case "leave":
      return { msg: "leave" };
    case "report": {
      if (o.reason !== "silent" && o.reason !== "forged") {
        fail(`"reason" must be "silent" or "forged"`);
      }
      return { msg: "report", node: int(o, "node"), reason: o.reason };
    }
    case "hello": {
      const m: RelayMessage = { msg: "hello", token: token(o.token, "token") };
      if (o.have !== undefined) m.have = int(o, "have");
      return m;
    }
    case "assign": {
      if (typeof o.key !== "string") fail(`"key" must be base64`);
      let raw: Uint8Array;
      try {
        raw = Uint8Array.from(atob(o.key), (c) => c.charCodeAt(0));
      } catch {
        fail(`"key" must be base64`);
      }
      if (raw.length !== PUBLIC_KEY_BYTES) fail(`"key" must be 32 bytes`);
      if (!Array.isArray(o.accept) || o.accept.length > 4096) fail(`"accept" must be a list`);
      return {
        msg: "assign",
        node: int(o, "node"),
        stream: int(o, "stream"),
        key: o.key,
        manifest: int(o, "manifest"),
        token: token(o.token, "token"),
        parent: peer(o.parent, "parent"),
        backup: peer(o.backup, "backup"),
        accept: o.accept.map((t) => token(t, "accept")),
      };
    }
    default:
      fail(`unknown "msg"`);
  }
}

/** Encodes a RELAY frame. */
export function encodeRelay(message: RelayMessage): Uint8Array {
  return encodeControl(FrameType.RELAY, message);
}

/** Base64 of raw bytes (the key in `assign`). */
export function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** Raw bytes of base64 text. */
export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
