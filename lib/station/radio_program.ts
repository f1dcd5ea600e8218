/**
 * What the request radio plays: listeners' requests in the order they came, otherwise a random
 * song (not the one just played, when there is a choice). Answers the `play` and `requests`
 * operations with the exact PLAY_RESULT texts of the protocol.
 *
 * @module
 */

import type { Song, SongCatalog } from "../songs/catalog.ts";
import type { NextSong } from "../media/station.ts";
import { PLAY_MESSAGES, type PlayResult, type QueueEntry } from "../wire/messages.ts";

/** Options for {@linkcode RadioProgram}. */
export interface RadioProgramOptions {
  /** Random source in [0, 1) (tests make it deterministic). @default {Math.random} */
  random?: () => number;
  /** The song on air now, so it cannot be requested again while it plays. */
  current?: () => Song | undefined;
}

/** The request queue and the random fallback. */
export class RadioProgram {
  readonly #catalog: SongCatalog;
  readonly #random: () => number;
  readonly #current: () => Song | undefined;
  readonly #queue: Song[] = [];
  #last: Song | undefined;

  /** @param catalog the songs that can be played. */
  constructor(catalog: SongCatalog, options: RadioProgramOptions = {}) {
    this.#catalog = catalog;
    this.#random = options.random ?? Math.random;
    this.#current = options.current ?? (() => this.#last);
  }

  /** Handles a `play` request for `name` (name or 1-based index). */
  request(name: string): PlayResult & { song?: Song } {
    const song = this.#catalog.find(name);
    if (!song) return { result: "not_found", message: PLAY_MESSAGES.not_found() };
    if (this.#queue.includes(song) || this.#current() === song) {
      return { result: "already_requested", message: PLAY_MESSAGES.already_requested(), song };
    }
    this.#queue.push(song);
    return { result: "requested", message: PLAY_MESSAGES.requested(song.title), song };
  }

  /** The waiting requests, next first. */
  queue(): QueueEntry[] {
    return this.#queue.map((s) => ({ title: s.title, durationMs: s.durationMs }));
  }

  /** Picks the next song (the Station's `nextSong`). */
  next(): NextSong {
    const requested = this.#queue.shift();
    if (requested) {
      this.#last = requested;
      return { song: requested, source: "request" };
    }
    const songs = this.#catalog.songs;
    if (songs.length === 0) throw new Error("Cannot play the radio: the songs folder is empty");
    const previous = this.#current() ?? this.#last;
    const choices = songs.length > 1 ? songs.filter((s) => s !== previous) : songs;
    const song = choices[Math.floor(this.#random() * choices.length)] ?? choices[0]!;
    this.#last = song;
    return { song, source: "random" };
  }
}
