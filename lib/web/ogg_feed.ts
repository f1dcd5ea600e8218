/**
 * The station as one Ogg/Opus byte stream for HTTP listeners (`/stream`), muxed once for all
 * of them with lib/icecast/ogg_opus.ts: the station's own Opus frames, no re-encoding. Like
 * Icecast, a listener gets the stream's two header pages (OpusHead, OpusTags) and then the
 * audio pages from the moment it joined (plus the last `joinBurstMs` of pages so playback
 * starts at once). Each listener gets those pages with its own granule positions and page
 * numbers, as if the stream had started when it joined (lib/icecast/ogg_rebase.ts: VLC 3
 * cannot play a first page that says "an hour in"); the pages are muxed once, and a listener
 * costs its copy of each batch (12 bytes and the CRC patched a page), made only when its queue
 * writes it, into one buffer the queue reuses (lib/web/listener_queue.ts).
 *
 * @module
 */

import type { Station, StationEvent } from "../media/station.ts";
import { splitOpusPayload } from "../station/encoder.ts";
import { OggOpusMuxer } from "../icecast/ogg_opus.ts";
import { OggRebaser, type SharedOggPage, sharedOggPage } from "../icecast/ogg_rebase.ts";
import { type LazyChunk, ListenerQueue, type ListenerQueueOptions } from "./listener_queue.ts";
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
  readonly #listeners = new Map<ListenerQueue, OggRebaser>();
  #mux: OggOpusMuxer | undefined;
  #headers: Uint8Array | undefined;
  #recent: SharedOggPage[] = [];
  #recentSamples = 0;
  #pcm = false;
  #batch: SharedOggPage[] = [];
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
    return [...this.#listeners.keys()].map((q) => ({ sent: q.bytesSent, queued: q.queuedBytes }));
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
      bytes += this.#recent[first - 1]!.bytes.length;
      if (bytes > room) break;
    }
    // Pages still waiting in the current batch come with the batch, not the burst.
    const last = this.#recent.length - this.#batch.length;
    const rebaser = new OggRebaser();
    const burst = this.#recent.slice(first, Math.max(first, last));
    if (burst.length > 0) q.push(rebased(rebaser, burst));
    this.#listeners.set(q, rebaser);
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
    for (const q of this.#listeners.keys()) q.end("stopped");
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
    let granule = this.#mux.granule;
    for (const bytes of this.#mux.pages(frames)) {
      // Every page of this muxer ends a packet, so its granule is set.
      const page = sharedOggPage(bytes, 0);
      const shared = { ...page, samples: Number(page.granule - granule) };
      granule = page.granule;
      this.#recent.push(shared);
      this.#recentSamples += shared.samples;
      this.#batch.push(shared);
      this.#batchSamples += shared.samples;
    }
    const keep = (this.#options.joinBurstMs ?? 1000) * 48;
    while (this.#recent.length > 1 && this.#recentSamples - this.#recent[0]!.samples >= keep) {
      this.#recentSamples -= this.#recent.shift()!.samples;
    }
    if (this.#batchSamples < (this.#options.batchMs ?? 500) * 48) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#batchSamples = 0;
    for (const [q, rebaser] of this.#listeners) q.push(rebased(rebaser, batch));
  }
}

/**
 * A listener's bytes for shared `pages`, made when its queue writes them (in queue order, so
 * the rebaser sees the pages in order) into the queue's reused buffer: nothing is copied per
 * listener until then.
 */
function rebased(rebaser: OggRebaser, pages: readonly SharedOggPage[]): LazyChunk {
  let length = 0;
  for (const p of pages) length += p.bytes.length;
  return { length, writeInto: (out) => rebaser.rebaseInto(pages, out) };
}
