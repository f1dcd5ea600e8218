/**
 * The one song-list format of every tool (udp-client --list, tls-client list and its shell):
 * a header and aligned columns, numbers right-aligned, titles escaped (they come from the
 * server). The number is what `--song N` / `play N` take.
 *
 * @module
 */

import { escapePeerText } from "./output.ts";

/** What a row shows; both transports' SONG_LIST entries have these fields. */
export interface SongRow {
  index: number;
  title: string;
  durationMs: number;
  codec: string;
  size: number;
}

/** `m:ss` (or `h:mm:ss` from an hour) for a duration in milliseconds. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor(total / 60) % 60;
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A size for people: `512 B`, `34 KiB`, `4.2 MiB`, `1.1 GiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/**
 * The lines of the song table: a header, then one row per song; a single line saying so when
 * there are none.
 */
export function formatSongTable(songs: readonly SongRow[]): string[] {
  if (songs.length === 0) return ["The server has no songs."];
  const rows = songs.map((s) => [
    String(s.index),
    escapePeerText(s.title),
    formatDuration(s.durationMs),
    s.codec,
    formatSize(s.size),
  ]);
  const header = ["#", "Title", "Length", "Codec", "Size"];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  // Numbers, lengths and sizes align right; the last column needs no padding after it.
  const right = [true, false, true, false, true];
  const line = (cells: string[]) =>
    cells.map((cell, c) => right[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))
      .join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}
