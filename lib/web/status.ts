/**
 * What the web page shows, as one JSON object (`/status.json`, and each Server-Sent Event):
 *
 * ```json
 * { "nowPlaying": { "title", "durationMs", "positionMs", "source" } | null,
 *   "queue": [ { "title", "durationMs" } ],
 *   "songs": [ { "index", "title", "durationMs", "codec" } ],
 *   "listeners": { "total", "tls", "web" },
 *   "codec": "opus" | "pcm" }
 * ```
 *
 * `queue` is the `tls-client queue` list and `nowPlaying` the `tls-client now` answer.
 *
 * @module
 */

import type { NowPlaying, QueueEntry } from "../wire/messages.ts";
import type { Station } from "../media/station.ts";
import type { RadioProgram } from "../station/radio_program.ts";
import type { SongCatalog } from "../songs/catalog.ts";

/** The status document; see the module doc. */
export interface WebStatus {
  nowPlaying: NowPlaying | null;
  queue: QueueEntry[];
  songs: { index: number; title: string; durationMs: number; codec: string }[];
  listeners: { total: number; tls: number; web: number };
  codec: string;
}

/** Where the status comes from. */
export interface StatusSources {
  station: Station;
  program: RadioProgram;
  catalog: SongCatalog;
  /** TLS radio listeners now. */
  tlsListeners: () => number;
  /** HTTP `/stream` listeners now. */
  webListeners: () => number;
}

/** The status now. */
export function webStatus(s: StatusSources): WebStatus {
  const tls = s.tlsListeners();
  const web = s.webListeners();
  return {
    nowPlaying: s.station.nowPlaying() ?? null,
    queue: s.program.queue(),
    songs: s.catalog.songs.map((song, i) => ({
      index: i + 1,
      title: song.title,
      durationMs: song.durationMs,
      codec: song.codec,
    })),
    listeners: { total: tls + web, tls, web },
    codec: s.station.codec,
  };
}
