/**
 * A radio station: plays songs one after another on a real-time clock whether or not anyone
 * listens, and hands each packet to every subscriber the moment it is due. Packets carry
 * station-wide sequence numbers and media timestamps, so all listeners receive identical
 * frames. Which song comes next is the caller's choice (loop the library, a request queue…).
 *
 * @module
 */

import { delay } from "@std/async/delay";
import type { NowPlaying, StreamInfo } from "../wire/messages.ts";
import type { Song } from "../songs/catalog.ts";
import { type MediaPacket, type PacketizedSong, packetizeSong } from "./packetizer.ts";

/** The song a station plays next, and why. */
export interface NextSong {
  song: Song;
  source: NowPlaying["source"];
}

/** A packet as the station sends it. */
export interface StationPacket {
  /** Station-wide DATA sequence number (wraps at 2^32). */
  sequence: number;
  /** Station media time in microseconds since the station started. */
  timestampUs: number;
  /** True for the first packet of a song. */
  songStart: boolean;
  /** Whole MP3 frames or PCM frames. */
  payload: Uint8Array;
}

/** What subscribers are told. */
export type StationEvent =
  | {
    type: "song";
    info: StreamInfo;
    nowPlaying: NowPlaying;
    /** Sequence number of the song's first (SONG_START) packet. */
    sequence: number;
  }
  | { type: "packet"; packet: StationPacket };

/** Options for {@linkcode Station}. */
export interface StationOptions {
  /** Largest packet payload (the transport's limit). */
  maxPayload: number;
  /** Picks the next song; called when one ends. */
  nextSong: () => NextSong;
  /**
   * Cuts a song into packets (a server passes its cache, so a looping song is cut once).
   * @default {packetizeSong}
   */
  packetize?: (song: Song) => Promise<PacketizedSong>;
  /** Stops the station. */
  signal: AbortSignal;
  /** Called when a song cannot be played (it is skipped). */
  onSkip?: (song: Song, error: Error) => void;
  /**
   * How much of the current song a new listener receives at once on joining, so its jitter
   * buffer fills and sound starts without waiting, in milliseconds.
   * @default {400}
   */
  joinBurstMs?: number;
}

interface Current {
  next: NextSong;
  packetized: PacketizedSong;
  /** performance.now() at which the song's first sample is due. */
  startedAt: number;
  /** Station timestamp of the song's first sample. */
  baseUs: number;
  /** Station sequence number of the song's first packet. */
  baseSequence: number;
  /** Index of the next packet to send. */
  position: number;
  /** Events already sent, by packet index: a joining listener's burst replays the same objects. */
  events: StationEvent[];
}

/** A real-time radio station; call {@linkcode Station.run}. */
export class Station {
  readonly #options: StationOptions;
  readonly #listeners = new Set<(event: StationEvent) => void>();
  #current: Current | undefined;
  #sequence = 0;
  #timeUs = 0;
  /** Songs started since the station began. */
  songsPlayed = 0;

  /** Creates a stopped station. */
  constructor(options: StationOptions) {
    this.#options = options;
  }

  /** Number of subscribers. */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /**
   * Adds a subscriber. It immediately receives the current song's `song` event and the last
   * `joinBurstMs` of packets, then every event as it happens. Returns the unsubscribe function.
   */
  subscribe(listener: (event: StationEvent) => void): () => void {
    const current = this.#current;
    if (current) {
      listener(this.#songEvent(current));
      const burstUs = (this.#options.joinBurstMs ?? 400) * 1000;
      const packets = current.packetized.packets;
      const sentUntil = packets[current.position - 1];
      let first = current.position;
      while (
        first > 0 && sentUntil &&
        sentUntil.timestampUs - packets[first - 1]!.timestampUs < burstUs
      ) first--;
      for (let i = first; i < current.position; i++) listener(this.#event(current, i));
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** What is playing now, or undefined before the first song starts. */
  nowPlaying(): NowPlaying | undefined {
    return this.#current && this.#nowPlaying(this.#current);
  }

  /** The current song. */
  get currentSong(): Song | undefined {
    return this.#current?.next.song;
  }

  /** Plays songs until the signal aborts; resolves then. */
  async run(): Promise<void> {
    const { signal } = this.#options;
    let failures = 0;
    while (!signal.aborted) {
      const next = this.#options.nextSong();
      let packetized: PacketizedSong;
      try {
        packetized = await (this.#options.packetize?.(next.song) ??
          packetizeSong(next.song, this.#options.maxPayload));
        if (packetized.packets.length === 0) throw new Error("no audio in the file");
        failures = 0;
      } catch (error) {
        this.#options.onSkip?.(next.song, error as Error);
        // A library of only broken files must not spin: back off.
        if (++failures >= 3) await delay(1000, { signal }).catch(() => {});
        continue;
      }
      await this.#play(next, packetized, signal);
    }
  }

  async #play(next: NextSong, packetized: PacketizedSong, signal: AbortSignal): Promise<void> {
    const current: Current = {
      next,
      packetized,
      startedAt: performance.now(),
      baseUs: this.#timeUs,
      baseSequence: this.#sequence,
      position: 0,
      events: [],
    };
    this.#current = current;
    this.songsPlayed++;
    this.#emit(this.#songEvent(current));
    const packets = packetized.packets;
    while (current.position < packets.length) {
      const due = current.startedAt + packets[current.position]!.timestampUs / 1000;
      const wait = due - performance.now();
      if (wait > 1) {
        try {
          await delay(wait, { signal });
        } catch {
          return;
        }
      }
      // Send everything that is due (catches up after a late timer, without drift).
      const now = performance.now();
      while (
        current.position < packets.length &&
        current.startedAt + packets[current.position]!.timestampUs / 1000 <= now + 1
      ) {
        this.#emit(this.#event(current, current.position));
        current.position++;
      }
    }
    // Wait out the last packet's playing time so the next song starts on time.
    const endAt = current.startedAt + packetized.durationUs / 1000;
    const rest = endAt - performance.now();
    if (rest > 0) await delay(rest, { signal }).catch(() => {});
    this.#sequence = (current.baseSequence + packets.length) >>> 0;
    this.#timeUs = current.baseUs + packetized.durationUs;
  }

  #event(current: Current, i: number): StationEvent {
    return current.events[i] ??= this.#newEvent(current, i);
  }

  #newEvent(current: Current, i: number): StationEvent {
    const p: MediaPacket = current.packetized.packets[i]!;
    return {
      type: "packet",
      packet: {
        sequence: (current.baseSequence + i) >>> 0,
        timestampUs: current.baseUs + p.timestampUs,
        songStart: i === 0,
        payload: p.payload,
      },
    };
  }

  #songEvent(current: Current): StationEvent {
    return {
      type: "song",
      info: this.#info(current),
      nowPlaying: this.#nowPlaying(current),
      sequence: current.baseSequence,
    };
  }

  #info(current: Current): StreamInfo {
    const info = { ...current.packetized.info, live: true };
    delete info.packets;
    return info;
  }

  #nowPlaying(current: Current): NowPlaying {
    const elapsed = Math.max(0, performance.now() - current.startedAt);
    return {
      title: current.next.song.title,
      durationMs: current.packetized.info.durationMs,
      positionMs: Math.min(Math.round(elapsed), current.packetized.info.durationMs),
      source: current.next.source,
    };
  }

  #emit(event: StationEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
