/**
 * The one-line playback status the players redraw on a terminal, in one vocabulary:
 * `A 0:05 / 0:22  buffer 180 ms  lost 0` (on demand) or `A 1:42 radio  buffer 180 ms  lost 0`
 * (time listened). `A` is for audio, as in mpv's and ffplay's status lines.
 *
 * @module
 */

import { formatDuration, formatSize } from "./song_table.ts";

/** What the status line shows; fields left out are not shown. */
export interface PlaybackStatus {
  /** Position in the song, or time listened for the radio (ms). */
  positionMs: number;
  /** The song's length; undefined for the radio. */
  durationMs?: number | undefined;
  /** Audio waiting to play (ms). */
  bufferedMs?: number | undefined;
  /** Packets lost so far (UDP). */
  lost?: number | undefined;
}

/** Formats the status line (see the module doc). */
export function formatPlaybackStatus(s: PlaybackStatus): string {
  const parts = [
    s.durationMs === undefined
      ? `A ${formatDuration(s.positionMs)} radio`
      : `A ${formatDuration(Math.min(s.positionMs, s.durationMs))} / ${
        formatDuration(s.durationMs)
      }`,
  ];
  if (s.bufferedMs !== undefined) parts.push(`buffer ${Math.round(s.bufferedMs)} ms`);
  if (s.lost !== undefined) parts.push(`lost ${s.lost}`);
  return parts.join("  ");
}

/**
 * The status line of a transfer: `1.2 MiB / 3.4 MiB  35 %  12.3 MiB/s  ETA 0:02` (the total,
 * percentage and ETA only when the size is known).
 */
export function formatTransferStatus(bytes: number, total: number | undefined, ms: number): string {
  const rate = ms > 0 ? bytes / (ms / 1000) : 0;
  const parts = [
    total === undefined ? formatSize(bytes) : `${formatSize(bytes)} / ${formatSize(total)}`,
  ];
  if (total !== undefined && total > 0) {
    parts.push(`${Math.floor(100 * Math.min(bytes, total) / total)} %`);
  }
  parts.push(`${(rate / 1024 ** 2).toFixed(1)} MiB/s`);
  if (total !== undefined && rate > 0 && bytes < total) {
    parts.push(`ETA ${formatDuration((total - bytes) / rate * 1000)}`);
  }
  return parts.join("  ");
}
