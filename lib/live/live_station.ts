/**
 * A live station: a capture source (microphone, `--tone`, `--input FILE`) encoded once as it is
 * captured and fanned out to every listener as the same {@linkcode StationEvent} stream the
 * song radio produces, so udp-server's and tls-server's radio code (and the ordinary clients)
 * carry it unchanged. What differs from the song radio (docs/PROTOCOL.md §5.4):
 *
 * - one Opus frame of `frameMs` (10 or 20) per DATA packet, sent as soon as it is encoded — or
 *   s16le PCM packets of at most `frameMs` each;
 * - the stream is the source's format (48 kHz, 1 or 2 channels), announced once in a
 *   STREAM_INFO with `live: true` and `captureEpochUs`: the wall-clock time (µs since the Unix
 *   epoch, sender's clock) at which station sample 0 was captured. A packet's capture time is
 *   `captureEpochUs + timestampUs`;
 * - no join burst: a new listener gets STREAM_INFO and NOW_PLAYING, then only packets captured
 *   after it joined ({@linkcode LiveStation.joinBurstMs} is 0).
 *
 * It is a {@linkcode Station} (the servers and the relay take one), but the caller runs it,
 * once, however many servers subscribe: pass it to them as their `station` option.
 *
 * @module
 */

import { CodecLibraryError, floatToS16, OpusEncoder, type OpusFrameMs } from "../codec/mod.ts";
import { littleEndianBytes } from "../media/packetizer.ts";
import { Station, type StationEvent } from "../media/station.ts";
import type { Song } from "../songs/catalog.ts";
import { OPUS_LENGTH_BYTES, type RadioCodec } from "../station/encoder.ts";
import type { NowPlaying, StreamInfo } from "../wire/messages.ts";
import type { LiveSource } from "./sources.ts";

/** Options of {@linkcode LiveStation}. */
export interface LiveStationOptions {
  /** What is captured. The station owns it (disposes it when run() ends). */
  source: LiveSource;
  /** Codec; `opus` falls back to `pcm` (with {@linkcode onFallback}) without libopus. */
  codec?: RadioCodec;
  /** Opus frame duration in ms (one frame per packet). @default {10} */
  frameMs?: 10 | 20;
  /** Opus bitrate in bit/s. @default {64000} per channel */
  bitrate?: number;
  /** Largest DATA payload (the smallest of the transports'). @default {1200} */
  maxPayload?: number;
  /** Stream title (STREAM_INFO, NOW_PLAYING). @default {"Live: " + source.description} */
  title?: string;
  /** Stops the station. */
  signal: AbortSignal;
  /** Called once if Opus fell back to PCM, with the reason. */
  onFallback?: (reason: string) => void;
}

/** Counters of a live station. */
export interface LiveStationStats {
  /** Packets sent. */
  packets: number;
  /** Blocks read from the source. */
  blocks: number;
  /** Largest time from a block's last captured sample to its packet's send (ms). */
  maxEncodeLagMs: number;
}

/** A capture-driven station; see the module doc. Call {@linkcode LiveStation.run} once. */
export class LiveStation extends Station {
  readonly #live: LiveStationOptions;
  readonly #subscribers = new Set<(event: StationEvent) => void>();
  #liveCodec: RadioCodec;
  #songEvent: Extract<StationEvent, { type: "song" }> | undefined;
  #sequence = 0;
  #samples = 0;
  /** Counters. */
  readonly stats: LiveStationStats = { packets: 0, blocks: 0, maxEncodeLagMs: 0 };

  /** Creates a stopped live station. */
  constructor(options: LiveStationOptions) {
    super({
      maxPayload: options.maxPayload ?? 1200,
      nextSong: () => {
        throw new Error("a live station plays no songs");
      },
      signal: options.signal,
      joinBurstMs: 0,
    });
    this.#live = options;
    this.#liveCodec = options.codec ?? "opus";
  }

  /** The codec in use (`pcm` after a fallback). */
  override get codec(): RadioCodec {
    return this.#liveCodec;
  }

  /** Sample frames sent so far. */
  override get samplesSent(): number {
    return this.#samples;
  }

  /** Number of subscribers. */
  override get listenerCount(): number {
    return this.#subscribers.size;
  }

  /** No song: a live station has none. */
  override get currentSong(): Song | undefined {
    return undefined;
  }

  /** A live station replays nothing to a joining listener but its STREAM_INFO. */
  override get joinBurstMs(): number {
    return 0;
  }

  /** The stream's title. */
  get title(): string {
    return this.#live.title ?? `Live: ${this.#live.source.description}`;
  }

  /** The frame duration in ms. */
  get frameMs(): 10 | 20 {
    return this.#live.frameMs ?? 10;
  }

  /**
   * Adds a subscriber: it gets the stream's `song` event (STREAM_INFO + NOW_PLAYING) once
   * the first packet was captured, then every packet from now on — no stale audio.
   */
  override subscribe(listener: (event: StationEvent) => void): () => void {
    if (this.#songEvent) listener({ ...this.#songEvent, nowPlaying: this.#nowPlayingNow() });
    this.#subscribers.add(listener);
    return () => this.#subscribers.delete(listener);
  }

  /** The live stream as NOW_PLAYING (position: time on air), or undefined before it starts. */
  override nowPlaying(): NowPlaying | undefined {
    return this.#songEvent && this.#nowPlayingNow();
  }

  /** Not used for a live station (there are no songs); the live STREAM_INFO once started. */
  override streamInfo(_song?: Song): StreamInfo {
    return this.#songEvent?.info ?? this.#info(0);
  }

  #info(captureEpochUs: number): StreamInfo {
    const { source } = this.#live;
    return {
      title: this.title,
      codec: this.#liveCodec === "opus" ? "opus" : "pcm_s16le",
      sampleRate: source.sampleRate,
      channels: source.channels,
      durationMs: 0,
      ...(this.#liveCodec === "opus" ? { frameMs: this.frameMs } : {}),
      live: true,
      captureEpochUs,
    };
  }

  #nowPlayingNow(): NowPlaying {
    return {
      title: this.title,
      durationMs: 0,
      positionMs: Math.round(this.#samples * 1000 / this.#live.source.sampleRate),
      source: "random",
    };
  }

  /** Captures, encodes and sends until the signal aborts or the source ends. */
  override async run(): Promise<void> {
    const { source, signal } = this.#live;
    await using _source = source;
    const rate = source.sampleRate;
    const ch = source.channels;
    const frameSamples = rate * this.frameMs / 1000;
    const maxPayload = this.#live.maxPayload ?? 1200;
    let opus: OpusEncoder | undefined;
    if (this.#liveCodec === "opus") {
      try {
        if (rate !== 48_000) throw new RangeError("Opus needs --rate 48000");
        opus = await OpusEncoder.create({
          channels: ch,
          frameMs: this.frameMs as OpusFrameMs,
          bitrate: this.#live.bitrate ?? 64_000 * ch,
        });
        this.lookahead = opus.lookahead;
      } catch (error) {
        if (!(error instanceof CodecLibraryError)) throw error;
        this.#liveCodec = "pcm";
        this.#live.onFallback?.(`${error.message}; the broadcast is PCM (s16le)`);
      }
    }
    using _opus = opus;
    // PCM: at most one frame's samples and maxPayload bytes per packet.
    const pcmFrames = Math.max(1, Math.min(frameSamples, Math.floor(maxPayload / (2 * ch))));
    let pending = new Float32Array(0);
    let pendingCaptureUs = 0;
    while (!signal.aborted) {
      const block = await source.read(signal);
      if (!block) return;
      this.stats.blocks++;
      if (pending.length === 0) pendingCaptureUs = block.captureUs;
      const joined = new Float32Array(pending.length + block.pcm.length);
      joined.set(pending);
      joined.set(block.pcm, pending.length);
      pending = joined;
      const unit = opus ? frameSamples : pcmFrames;
      while (pending.length >= unit * ch) {
        const samples = pending.subarray(0, unit * ch);
        let payload: Uint8Array;
        if (opus) {
          const frame = opus.encode(samples, Math.min(1275, maxPayload - OPUS_LENGTH_BYTES));
          payload = new Uint8Array(OPUS_LENGTH_BYTES + frame.length);
          new DataView(payload.buffer).setUint16(0, frame.length);
          payload.set(frame, OPUS_LENGTH_BYTES);
        } else {
          payload = littleEndianBytes(floatToS16(samples)).slice();
        }
        this.#emitPacket(payload, pendingCaptureUs, unit);
        pendingCaptureUs += unit * 1e6 / rate;
        pending = pending.slice(unit * ch);
      }
    }
  }

  #emitPacket(payload: Uint8Array, captureUs: number, frames: number): void {
    const rate = this.#live.source.sampleRate;
    if (!this.#songEvent) {
      const info = this.#info(Math.round(captureUs));
      this.#songEvent = {
        type: "song",
        info,
        nowPlaying: this.#nowPlayingNow(),
        sequence: this.#sequence,
      };
      this.songsPlayed = 1;
      this.#emit(this.#songEvent);
    }
    const timestampUs = Math.round(this.#samples * 1e6 / rate);
    const endUs = this.#songEvent.info.captureEpochUs! + (this.#samples + frames) * 1e6 / rate;
    const lagMs = (performance.timeOrigin + performance.now()) - endUs / 1000;
    if (lagMs > this.stats.maxEncodeLagMs) this.stats.maxEncodeLagMs = lagMs;
    const event: StationEvent = {
      type: "packet",
      packet: {
        sequence: this.#sequence,
        timestampUs,
        songStart: this.#sequence === this.#songEvent.sequence,
        payload,
      },
    };
    this.#sequence = (this.#sequence + 1) >>> 0;
    this.#samples += frames;
    this.stats.packets++;
    this.#emit(event);
  }

  #emit(event: StationEvent): void {
    for (const listener of this.#subscribers) listener(event);
  }
}
