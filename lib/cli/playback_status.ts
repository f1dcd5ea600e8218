/**
 * The one-line playback status the players redraw on a terminal, in one vocabulary:
 * `A 0:05 / 0:22  buffer 180 ms  lost 0` (on demand) or `A 1:42 radio  buffer 180 ms  lost 0`
 * (time listened). `A` is for audio, as in mpv's and ffplay's status lines.
 *
 * @module
 */

import { formatDuration } from "./song_table.ts";

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
