/**
 * A radio station: one continuous stream in one format, on a real-time clock whether or not
 * anyone listens. Every song, whatever its file format, is decoded, resampled to 48 kHz stereo
 * (lib/station/source.ts) and encoded once by a single encoder for the whole run
 * (lib/station/encoder.ts: Opus 20 ms frames, or s16le PCM), so song changes are gapless and
 * every listener gets byte-identical packets. The clock is the number of samples encoded
 * (lib/station/clock.ts): timestamps are `samples / 48000` in µs and packets are sent when
 * their first sample is due, with catch-up after late timers and no drift.
 *
 * Which song comes next is the caller's choice (loop the library, a request queue…).
 *
 * @module
 */

import { delay } from "@std/async/delay";
import type { NowPlaying, StreamInfo } from "../wire/messages.ts";
import type { Song } from "../songs/catalog.ts";
import { CodecLibraryError, expectedOutputFrames } from "../codec/mod.ts";
import { samplesToUs, STATION_CHANNELS, STATION_RATE, StationClock } from "../station/clock.ts";
import {
  type EncodedPacket,
  type RadioCodec,
  STATION_FRAME_MS,
  StationEncoder,
} from "../station/encoder.ts";
import { songBlocks } from "../station/source.ts";

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
  /** True for the packet holding a song's first sample. */
  songStart: boolean;
  /** Opus frames with length prefixes, or s16le PCM (the source feed: whole MP3 frames). */
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
  /**
   * Most audio in one packet (ms): 60 on UDP (3 Opus frames), 100 on TLS (5).
   * @default {60}
   */
  maxPacketMs?: number;
  /**
   * Station codec; `opus` falls back to `pcm` (with {@linkcode onFallback}) without libopus.
   * @default {"opus"}
   */
  codec?: RadioCodec;
  /** Opus bitrate (bit/s). @default {128000} */
  bitrate?: number;
  /** Picks the next song; called when one ends. */
  nextSong: () => NextSong;
  /** Stops the station. */
  signal: AbortSignal;
  /** Called when a song cannot be played (it is skipped, or cut where it failed). */
  onSkip?: (song: Song, error: Error) => void;
  /** Called once if the Opus station fell back to PCM (libopus missing), with the reason. */
  onFallback?: (reason: string) => void;
  /**
   * How much audio a new listener receives at once on joining, so its jitter buffer fills and
   * sound starts without waiting, in milliseconds.
   * @default {400}
   */
  joinBurstMs?: number;
}

interface Mark {
  next: NextSong;
  info: StreamInfo;
  /** Station sample of the song's first sample (set when its packet is sent). */
  startSample: number;
}

/** A real-time radio station; call {@linkcode Station.run}. */
export class Station {
  readonly #options: StationOptions;
  readonly #listeners = new Set<(event: StationEvent) => void>();
  #current: { mark: Mark; event: StationEvent } | undefined;
  /** Recent events (songs and packets, about joinBurstMs) replayed to a new listener. */
  #recent: StationEvent[] = [];
  #sequence = 0;
  /** Sample frames sent (end of the last packet). */
  #sentSamples = 0;
  #codec: RadioCodec;
  /** Songs started since the station began. */
  songsPlayed = 0;
  /** Encoder lookahead in samples (decoded audio lags timestamps by this), once running. */
  lookahead = 0;
  /** The clock, once running. */
  clock: StationClock | undefined;

  /** Creates a stopped station. */
  constructor(options: StationOptions) {
    this.#options = options;
    this.#codec = options.codec ?? "opus";
  }

  /** The codec in use (`pcm` after a fallback). */
  get codec(): RadioCodec {
    return this.#codec;
  }

  /** Station samples sent so far (the live edge). */
  get samplesSent(): number {
    return this.#sentSamples;
  }

  /** Number of subscribers. */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /** Audio a new listener is sent at once on joining (ms); 0 for a live capture station. */
  get joinBurstMs(): number {
    return this.#options.joinBurstMs ?? 400;
  }

  /**
   * Adds a subscriber. It immediately receives the `song` event and the last `joinBurstMs` of
   * packets, then every event as it happens. Returns the unsubscribe function.
   */
  subscribe(listener: (event: StationEvent) => void): () => void {
    for (const event of this.#recent) listener(event);
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** What is playing now, or undefined before the first song starts. */
  nowPlaying(): NowPlaying | undefined {
    return this.#current && this.#nowPlaying(this.#current.mark);
  }

  /** The current song. */
  get currentSong(): Song | undefined {
    return this.#current?.mark.next.song;
  }

  /** The STREAM_INFO every song of this station carries (title and duration aside). */
  streamInfo(song: Song): StreamInfo {
    const frames = expectedOutputFrames(song.frames, song.sampleRate);
    return {
      title: song.title,
      codec: this.#codec === "opus" ? "opus" : "pcm_s16le",
      sampleRate: STATION_RATE,
      channels: STATION_CHANNELS,
      durationMs: Math.round(frames * 1000 / STATION_RATE),
      ...(this.#codec === "opus" ? { frameMs: STATION_FRAME_MS } : {}),
      live: true,
    };
  }

  /** Plays songs until the signal aborts; resolves then. */
  async run(): Promise<void> {
    const { signal } = this.#options;
    const encoder = await this.#openEncoder();
    using _enc = encoder;
    this.lookahead = encoder.lookahead;
    const clock = this.clock = new StationClock(performance.now());
    let failures = 0;
    while (!signal.aborted) {
      const next = this.#options.nextSong();
      const mark: Mark = { next, info: this.streamInfo(next.song), startSample: 0 };
      let any = false;
      try {
        for await (const block of songBlocks(next.song.path, { signal })) {
          const packets = encoder.push(block, any ? undefined : mark);
          any = true;
          if (!await this.#send(packets, clock, signal)) return;
        }
        if (!any) throw new Error("no audio in the file");
        failures = 0;
      } catch (error) {
        if (signal.aborted) return;
        this.#options.onSkip?.(next.song, error as Error);
        // A library of only broken files must not spin: back off.
        if (!any && ++failures >= 3) await delay(1000, { signal }).catch(() => {});
      }
    }
  }

  async #openEncoder(): Promise<StationEncoder<Mark>> {
    const options = {
      codec: this.#codec,
      maxPayload: this.#options.maxPayload,
      maxPacketMs: this.#options.maxPacketMs ?? 60,
      bitrate: this.#options.bitrate,
    };
    try {
      return await StationEncoder.create<Mark>(options);
    } catch (error) {
      if (!(error instanceof CodecLibraryError) || this.#codec !== "opus") throw error;
      this.#codec = "pcm";
      this.#options.onFallback?.(`${error.message}; the radio sends PCM (s16le 48 kHz stereo)`);
      return await StationEncoder.create<Mark>({ ...options, codec: "pcm" });
    }
  }

  /** Sends packets when due; false when stopped. */
  async #send(
    packets: EncodedPacket<Mark>[],
    clock: StationClock,
    signal: AbortSignal,
  ): Promise<boolean> {
    for (const p of packets) {
      const wait = clock.waitMs(p.startSample, performance.now());
      if (wait > 1) {
        try {
          await delay(wait, { signal });
        } catch {
          return false;
        }
      }
      if (signal.aborted) return false;
      const sequence = this.#sequence;
      for (const mark of p.marks) this.#songStart(mark, p.startSample, sequence);
      const event: StationEvent = {
        type: "packet",
        packet: {
          sequence,
          timestampUs: samplesToUs(p.startSample),
          songStart: p.marks.length > 0,
          payload: p.payload,
        },
      };
      this.#sequence = (sequence + 1) >>> 0;
      this.#sentSamples = p.startSample + p.samples;
      this.#remember(event);
      this.#emit(event);
    }
    return true;
  }

  #songStart(mark: Mark, startSample: number, sequence: number): void {
    mark.startSample = startSample;
    this.songsPlayed++;
    const event: StationEvent = {
      type: "song",
      info: mark.info,
      nowPlaying: this.#nowPlaying(mark),
      sequence,
    };
    this.#current = { mark, event };
    this.#remember(event);
    this.#emit(event);
  }

  /** Keeps the last joinBurstMs of packets, and the song event they belong to. */
  #remember(event: StationEvent): void {
    const recent = this.#recent;
    recent.push(event);
    const burstSamples = (this.#options.joinBurstMs ?? 400) * STATION_RATE / 1000;
    const oldestUs = samplesToUs(Math.max(0, this.#sentSamples - burstSamples));
    // Drop packets older than the window; keep the newest song event before the first kept one.
    let firstKept = recent.findIndex((e) =>
      e.type === "packet" && e.packet.timestampUs >= oldestUs
    );
    if (firstKept < 0) firstKept = recent.length;
    let song = -1;
    for (let i = 0; i < firstKept; i++) if (recent[i]!.type === "song") song = i;
    if (firstKept === 0) return;
    const kept = recent.slice(firstKept);
    if (song >= 0) kept.unshift(recent[song]!);
    this.#recent = kept;
  }

  #nowPlaying(mark: Mark): NowPlaying {
    const elapsed = Math.max(0, this.#sentSamples - mark.startSample) * 1000 / STATION_RATE;
    return {
      title: mark.next.song.title,
      durationMs: mark.info.durationMs,
      positionMs: Math.min(Math.round(elapsed), mark.info.durationMs),
      source: mark.next.source,
    };
  }

  #emit(event: StationEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
