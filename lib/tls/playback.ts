/**
 * Plays what tls-client receives while it keeps receiving: the network side hands stream
 * starts and DATA payloads to a queue, and one task decodes them through
 * {@linkcode MediaPlayout} into a sink (device, WAV file, stdout). The network never waits
 * for the sound card — a download finishes at network speed (so the server's stall timeout
 * never fires for a slow listener) while the music plays in real time. The queue is bounded
 * (`maxQueuedBytes`, counting every queued item); a live stream waits for room instead
 * ({@linkcode Playback.room}), and its output follows the media clock (see MediaPlayout), so a
 * radio that floods costs a bounded queue and TCP backpressure, not memory or disk.
 *
 * @module
 */

import { MediaPlayout } from "../media/playout.ts";
import type { PcmFormat } from "../media/pcm_convert.ts";
import { openPcmSink, type PcmSink } from "../audio/sink.ts";
import type { AudioBackend } from "../audio/devices.ts";
import type { StreamInfo } from "../wire/messages.ts";
import { type LiveLatencyReport, wallClockUs } from "../live/latency.ts";
import { LiveOutput } from "../live/live_output.ts";
import { LiveDevice } from "../live/live_device.ts";

/** Options for {@linkcode Playback}. */
export interface PlaybackOptions {
  /** "FILE.wav", "-" (raw PCM on stdout), or unset for a device. */
  output?: string;
  /** Device backend. @default {"auto"} */
  backend?: AudioBackend;
  /** Device name or "#index". */
  device?: string;
  /** Told once which output was opened (and whether it is the silent null backend). */
  onOpen?: (description: string, silent: boolean, format: PcmFormat) => void;
  /** Stop after this much audio (milliseconds of output). @default {Infinity} */
  maxMs?: number;
  /** Most bytes waiting to be decoded (each item counts at least 64). @default {134217728} */
  maxQueuedBytes?: number;
  /**
   * A live capture's buffer (`--buffer MS|auto`, lib/live/live_output.ts).
   * @default {LIVE_STREAM_BUFFER_MS}
   */
  liveBufferMs?: number | "auto";
  /** Stops playing. */
  signal?: AbortSignal;
}

type Op =
  | { kind: "start"; info: StreamInfo; fromStart: boolean }
  | { kind: "data"; payload: Uint8Array; captureUs?: number };

/** A decode-and-play task fed from the network. */
export class Playback implements AsyncDisposable {
  readonly #options: PlaybackOptions;
  readonly #playout: MediaPlayout;
  #sink: PcmSink | undefined;
  #ops: Op[] = [];
  #queued = 0;
  #ended = false;
  #wake: (() => void) | undefined;
  /** Woken whenever the task takes an item (see {@linkcode room}). */
  #roomWaiters: (() => void)[] = [];
  #error: Error | undefined;
  readonly #task: Promise<void>;
  /** True once `maxMs` of audio was played. */
  reachedLimit = false;
  /** A live capture (STREAM_INFO captureEpochUs): its buffer, drift correction, latency. */
  #live: LiveOutput | undefined;
  /** Capture time of the live packet being decoded. */
  #playingCaptureUs = 0;
  /** A live capture on a device: its level and start batch. */
  #liveDevice: LiveDevice | undefined;

  /** Starts the (idle) playback task. */
  constructor(options: PlaybackOptions = {}) {
    this.#options = options;
    this.#playout = new MediaPlayout({
      signal: options.signal,
      openOutput: async (format: PcmFormat) => {
        const sink = await openPcmSink({
          ...format,
          output: options.output,
          backend: options.backend,
          device: options.device,
          // A live capture: the device period follows its buffer (livePeriodMs).
          periodMs: this.#live?.periodMs,
          signal: options.signal,
        });
        this.#sink = sink;
        options.onOpen?.(sink.description, sink.fellBackToNull, format);
        if (this.#live && sink.player) {
          this.#liveDevice ??= new LiveDevice(sink.player, format, this.#live.periodMs);
        }
        return {
          write: (pcm: Int16Array) => {
            const limit = options.maxMs;
            if (limit !== undefined) {
              // MediaPlayout counts a block in framesWritten before writing it.
              const blockFrames = pcm.length / format.channels;
              const before = this.#playout.framesWritten - blockFrames;
              const allowed = Math.round(limit * format.sampleRate / 1000) - before;
              if (allowed <= 0) {
                this.reachedLimit = true;
                return Promise.resolve();
              }
              if (allowed < blockFrames) {
                pcm = pcm.subarray(0, allowed * format.channels);
                this.reachedLimit = true;
              }
            }
            const device = this.#liveDevice;
            if (this.#live && device && pcm.length > format.channels) {
              pcm = this.#live.adjust(pcm, format, device.levelFrames(), this.#playingCaptureUs);
              const block = device.toWrite(pcm);
              if (!block) return Promise.resolve();
              pcm = block;
            }
            return sink.write(pcm, { signal: options.signal });
          },
        };
      },
    });
    this.#task = this.#run();
    this.#task.catch(() => {});
  }

  /** Sample frames played so far. */
  get framesPlayed(): number {
    return this.#playout.framesWritten;
  }

  /**
   * Audio played so far, in milliseconds: what the device consumed, or what was written to a
   * file (0 before the output opens).
   */
  get positionMs(): number {
    const rate = this.#sink?.sampleRate;
    if (!rate) return 0;
    const player = this.#disposed ? undefined : this.#sink?.player;
    // A device: what it has consumed (a write may hand it a whole song that waits in ours).
    return (player ? player.framesConsumed : this.#playout.framesWritten) / rate * 1000;
  }

  /** Audio waiting in the device's ring (ms), when the output is a device. */
  get deviceQueuedMs(): number | undefined {
    return this.#disposed ? undefined : this.#sink?.player?.queuedMs;
  }

  /**
   * Underruns the audio device counted (its ring ran short while playing: audible gaps);
   * undefined when the output is a WAV file or stdout, or not opened yet. Read before dispose.
   */
  get deviceUnderruns(): number | undefined {
    const player = this.#sink?.player;
    return player && !this.#disposed ? player.underruns : undefined;
  }

  /** Starts a new stream (song). `fromStart`: the data begins at the song's first sample. */
  start(info: StreamInfo, fromStart = true): void {
    this.#push({ kind: "start", info, fromStart });
  }

  /**
   * Queues a DATA payload. `captureUs`: a live capture's time of its first sample (µs since
   * the Unix epoch, STREAM_INFO captureEpochUs + timestamp); its latency is measured.
   */
  data(payload: Uint8Array, captureUs?: number): void {
    if (captureUs !== undefined) {
      this.#live ??= new LiveOutput({ bufferMs: this.#options.liveBufferMs });
      this.#live.onArrival(captureUs, performance.now(), wallClockUs());
    }
    this.#push({ kind: "data", payload, captureUs });
  }

  /**
   * A live capture's statistics once any packet was played: latency capture → output (and
   * until heard, on a device), the buffer, the drift correction.
   */
  get liveLatency(): LiveLatencyReport | undefined {
    return this.#live && this.#live.count > 0 ? this.#live.report() : undefined;
  }

  /** Bytes waiting to be decoded (each item counted at least 64). */
  get queuedBytes(): number {
    return this.#queued;
  }

  /**
   * Waits until at most `maxBytes` are queued (or playback failed or ended): a live stream
   * calls this before reading more from the network, so a sender faster than real time is
   * slowed by TCP backpressure instead of growing the queue.
   */
  async room(maxBytes: number): Promise<void> {
    while (this.#queued > maxBytes && !this.#error && !this.#stopped()) {
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
    if (this.#error) throw this.#error;
  }

  #stopped(): boolean {
    return this.reachedLimit || this.#options.signal?.aborted === true || this.#disposed;
  }

  #disposed = false;

  #tookItem(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const w of waiters) w();
  }

  #push(op: Op): void {
    if (this.#error) throw this.#error;
    const bytes = cost(op);
    if (this.#queued + bytes > (this.#options.maxQueuedBytes ?? 128 * 1024 * 1024)) {
      throw new Error("Cannot play: the audio output is too far behind the network");
    }
    this.#ops.push(op);
    this.#queued += bytes;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** No more input: waits until everything queued has been played (and the device drained). */
  async finish(): Promise<void> {
    this.#ended = true;
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    await this.#task;
    await this.#sink?.drain({ signal: this.#options.signal });
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        const op = this.#ops.shift();
        if (!op) {
          if (this.#ended) break;
          await new Promise<void>((resolve) => (this.#wake = resolve));
          continue;
        }
        if (this.#options.signal?.aborted || this.reachedLimit) {
          this.#ops = [];
          this.#queued = 0;
          this.#tookItem();
          if (this.#ended) break;
          continue;
        }
        this.#queued -= cost(op);
        this.#tookItem();
        if (op.kind === "start") {
          if (op.info.captureEpochUs !== undefined) {
            this.#live ??= new LiveOutput({ bufferMs: this.#options.liveBufferMs });
          }
          await this.#playout.startStream(op.info, op.fromStart);
        } else {
          const live = op.captureUs === undefined ? undefined : this.#live;
          if (live) {
            // The first live packet waits out the buffer (arrival jitter's margin).
            const wait = live.startWaitMs(performance.now());
            if (wait > 0) await abortableDelay(wait, this.#options.signal);
            this.#playingCaptureUs = op.captureUs!;
          }
          await this.#playout.media(op.payload);
          if (live) {
            const player = this.#disposed ? undefined : this.#sink?.player;
            live.record(op.captureUs!, wallClockUs(), player?.queuedFrames, this.#sink?.sampleRate);
          }
        }
      }
      if (!this.#options.signal?.aborted && !this.reachedLimit) await this.#playout.finishStream();
    } catch (error) {
      this.#error = error as Error;
      this.#tookItem();
      throw error;
    }
  }

  /** Closes the output (without waiting for queued audio). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#ended = true;
    this.#disposed = true;
    this.#liveDevice?.[Symbol.dispose]();
    this.#ops = [];
    this.#queued = 0;
    this.#tookItem();
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
    await this.#task.catch(() => {});
    this.#playout[Symbol.dispose]();
    await this.#sink?.close();
  }
}

/** Sleeps `ms`; the signal ends it early (not an error: the loop sees the abort). */
function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** What an item costs in the queue: its bytes, at least 64 (stream starts are not free). */
function cost(op: Op): number {
  return op.kind === "data" ? Math.max(64, op.payload.length) : 64;
}
