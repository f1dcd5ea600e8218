/**
 * The station as one Ogg/Opus byte stream for HTTP listeners (`/stream`), muxed once for all
 * of them with lib/icecast/ogg_opus.ts: the station's own Opus frames, no re-encoding. Like
 * Icecast, a listener gets the stream's two header pages (OpusHead, OpusTags) and then the
 * audio pages from the moment it joined (plus the last `joinBurstMs` of pages so playback
 * starts at once); its first granule is therefore not 0 (a live stream's start time).
 *
 * @module
 */

import type { Station, StationEvent } from "../media/station.ts";
import { splitOpusPayload } from "../station/encoder.ts";
import { OggOpusMuxer } from "../icecast/ogg_opus.ts";
import { ListenerQueue, type ListenerQueueOptions } from "./listener_queue.ts";
import type { HttpConn } from "./http.ts";
import { HttpError } from "./errors.ts";

/** Options of {@linkcode OggFeed}. */
export interface OggFeedOptions extends ListenerQueueOptions {
  /** Pages replayed to a joining listener, in ms of audio. @default {1000} */
  joinBurstMs?: number;
  /**
   * Pages are handed to listeners together every this many ms of audio (one write per listener
   * per batch: with 1000 listeners, a write per 100 ms page costs ~2.5× the CPU of icecast2;
   * bench/web_stream.ts). 0: every page at once. @default {500}
   */
  batchMs?: number;
}

/** Fans the station's Ogg/Opus pages out to HTTP listeners. */
export class OggFeed {
  readonly #station: Station;
  readonly #options: OggFeedOptions;
  readonly #listeners = new Set<ListenerQueue>();
  #mux: OggOpusMuxer | undefined;
  #headers: Uint8Array | undefined;
  #recent: { page: Uint8Array; samples: number }[] = [];
  #recentSamples = 0;
  #pcm = false;
  #batch: Uint8Array[] = [];
  #batchSamples = 0;
  readonly #unsubscribe: () => void;
  /** Listeners dropped because their queue filled. */
  dropped = 0;

  /** Subscribes to `station` until {@linkcode close}. */
  constructor(station: Station, options: OggFeedOptions = {}) {
    this.#station = station;
    this.#options = options;
    this.#unsubscribe = station.subscribe((event) => this.#onEvent(event));
  }

  /** Bytes sent to and queued for each listener now. */
  queues(): { sent: number; queued: number }[] {
    return [...this.#listeners].map((q) => ({ sent: q.bytesSent, queued: q.queuedBytes }));
  }

  /** HTTP listeners now. */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  /**
   * Adds a listener on `conn` (its response head must already be written). Resolves when it
   * ends, with why.
   * @throws {HttpError} 503 when the station is not Opus or has not started
   */
  add(conn: HttpConn): ListenerQueue {
    this.check();
    const q = new ListenerQueue(conn, this.#options);
    q.push(this.#headers!);
    // The burst takes at most half of the listener's queue (the newest pages).
    const room = (this.#options.maxBytes ?? 256 * 1024) / 2 - this.#headers!.length;
    let first = this.#recent.length;
    for (let bytes = 0; first > 0; first--) {
      bytes += this.#recent[first - 1]!.page.length;
      if (bytes > room) break;
    }
    // Pages still waiting in the current batch come with the batch, not the burst.
    const last = this.#recent.length - this.#batch.length;
    for (const r of this.#recent.slice(first, Math.max(first, last))) q.push(r.page);
    this.#listeners.add(q);
    q.finished.then((end) => {
      this.#listeners.delete(q);
      if (end === "too_slow") this.dropped++;
    });
    return q;
  }

  /**
   * Throws unless {@linkcode add} would accept a listener now.
   * @throws {HttpError} 503 when the station is not Opus or has not started
   */
  check(): void {
    if (this.#pcm) {
      throw new HttpError(503, "The station is PCM; /stream needs --radio-codec opus");
    }
    if (!this.#headers) throw new HttpError(503, "The station has not started yet");
  }

  /** Unsubscribes and ends every listener. */
  close(): void {
    this.#unsubscribe();
    for (const q of this.#listeners) q.end("stopped");
  }

  #onEvent(event: StationEvent): void {
    if (event.type === "song") {
      this.#pcm = event.info.codec !== "opus";
      if (!this.#pcm && !this.#mux) {
        this.#mux = new OggOpusMuxer({
          preSkip: this.#station.lookahead || 312,
          tags: { TITLE: "soundsock radio" },
        });
        const [a, b] = this.#mux.headers();
        const h = new Uint8Array(a!.length + b!.length);
        h.set(a!);
        h.set(b!, a!.length);
        this.#headers = h;
      }
      return;
    }
    if (this.#pcm || !this.#mux) return;
    const frames = splitOpusPayload(event.packet.payload);
    const before = this.#mux.granule;
    const pages = this.#mux.pages(frames);
    const samples = Number(this.#mux.granule - before);
    const page = pages.length === 1 ? pages[0]! : concat(pages);
    this.#recent.push({ page, samples });
    this.#recentSamples += samples;
    const keep = (this.#options.joinBurstMs ?? 1000) * 48;
    while (this.#recent.length > 1 && this.#recentSamples - this.#recent[0]!.samples >= keep) {
      this.#recentSamples -= this.#recent.shift()!.samples;
    }
    this.#batch.push(page);
    this.#batchSamples += samples;
    if (this.#batchSamples < (this.#options.batchMs ?? 500) * 48) return;
    const batch = this.#batch.length === 1 ? this.#batch[0]! : concat(this.#batch);
    this.#batch = [];
    this.#batchSamples = 0;
    for (const q of this.#listeners) q.push(batch);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
