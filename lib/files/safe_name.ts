/**
 * File names for downloads saved into a folder. The name comes from the catalog entry the user
 * asked for (or the server's title for it), and neither is trusted as a path: it is reduced to
 * one safe base name that always stays inside the folder — no separators, no `.`/`..`, no
 * leading dot (no hidden or dot files such as `.bashrc`), no control or bidi-override
 * characters, none of the characters Windows forbids, no Windows device names (`CON`, `NUL`,
 * `COM1`, …), at most 255 UTF-8 bytes, and ending in the extension of the announced codec.
 *
 * @module
 */

import { PEER_UNSAFE_CHARS } from "../cli/output.ts";

/** Longest file name most filesystems accept, in UTF-8 bytes. */
export const MAX_FILE_NAME_BYTES = 255;

/** Windows device names: reserved with any extension, in any case (`con.mp3`, `Com1.wav`). */
export const RESERVED_DEVICE_NAME: RegExp =
  /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;

// What peer text may not bring (controls, bidi overrides, line separators, lone surrogates:
// lib/cli/output.ts), plus the characters Windows forbids and both separators.
const UNSAFE = new RegExp(`[${PEER_UNSAFE_CHARS}<>:"|?*/\\\\]`, "gu");

/**
 * Reduces `name` to a safe base name: the last path segment, unsafe characters replaced by `_`,
 * leading dots and spaces and trailing dots and spaces removed, device names prefixed with `_`,
 * cut to {@linkcode MAX_FILE_NAME_BYTES}. Returns `fallback` (itself made safe) when nothing is
 * left.
 *
 * @example `safeFileName("../../etc/passwd")` → `"passwd"`; `safeFileName(".bashrc")` →
 * `"bashrc"`; `safeFileName("NUL.mp3")` → `"_NUL.mp3"`.
 */
export function safeFileName(name: string, fallback = "download"): string {
  // The last segment after either separator: "a/b\\c" names "c" on every platform.
  const segment = name.split(/[/\\]/).pop() ?? "";
  let s = segment.normalize("NFC").replace(UNSAFE, "_");
  s = s.replace(/^[.\s]+/u, "").replace(/[.\s]+$/u, "");
  if (s === "") return fallback === "" ? "download" : safeFileName(fallback, "download");
  const stem = s.split(".")[0]!.trimEnd();
  if (RESERVED_DEVICE_NAME.test(stem)) s = `_${s}`;
  return truncateUtf8(s, MAX_FILE_NAME_BYTES);
}

/**
 * {@linkcode safeFileName}, then makes sure the name ends in `.ext` (appending it when it does
 * not, case-insensitively), keeping the extension when the name has to be cut.
 */
export function safeFileNameWithExtension(name: string, ext: string, fallback?: string): string {
  const e = safeFileName(ext, "bin").replace(/^\.+/, "").replaceAll(".", "_");
  let base = safeFileName(name, fallback);
  if (base.toLowerCase().endsWith(`.${e.toLowerCase()}`)) return base;
  base = truncateUtf8(base, MAX_FILE_NAME_BYTES - new TextEncoder().encode(e).length - 1);
  return safeFileName(`${base}.${e}`);
}

const encoder = new TextEncoder();

/** Cuts `s` to at most `max` UTF-8 bytes without splitting a character. */
function truncateUtf8(s: string, max: number): string {
  if (encoder.encode(s).length <= max) return s;
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    const n = encoder.encode(ch).length;
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out.replace(/[.\s]+$/u, "");
}

/**
 * The file name a download of `asked` is saved under inside a folder: the name the user asked
 * for, or — when they asked by list number (`3`) — the title the server gave that entry; either
 * way made safe and ending in the extension of `codec`.
 *
 * @example `savedFileName("nocturne", "../../x", "mp3")` → `"nocturne.mp3"`;
 * `savedFileName("3", "/etc/.bashrc", "wav")` → `"bashrc.wav"`.
 */
export function savedFileName(asked: string, title: string, codec: string): string {
  const byIndex = /^\s*[0-9]+\s*$/.test(asked);
  const ext = codec === "pcm_s16le" ? "raw" : codec;
  return safeFileNameWithExtension(byIndex ? title : asked, ext, `song-${asked.trim()}`);
}
