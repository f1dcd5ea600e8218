/**
 * Recorder: captures 16-bit PCM from a device through miniaudio. The audio thread fills a C ring
 * buffer; JS drains it in chunks.
 *
 * @module
 */

import { _DeviceHandle, _openDevice, _sleep, _stats } from "./_device.ts";
import type { _Opened, DeviceOptions, DeviceStats } from "./_device.ts";

/** Options of {@linkcode Recorder.open}. */
export interface RecorderOptions extends DeviceOptions {
  /**
   * Size of the chunks the iterator yields, in ms (a chunk is yielded once this much is ready).
   * @default 100
   */
  chunkMs?: number;
}

/** A capture device. Iterate it for Int16Array chunks; close() ends the iteration. */
export class Recorder extends _DeviceHandle implements AsyncIterable<Int16Array> {
  #chunkFrames: number;

  private constructor(d: _Opened, chunkMs: number) {
    super(d);
    this.#chunkFrames = Math.max(1, Math.round(d.sampleRate * chunkMs / 1000));
  }

  /**
   * Opens and starts a capture device.
   * @throws {AudioDeviceError} device not found (message lists the devices) or cannot be opened
   */
  static async open(options: RecorderOptions = {}): Promise<Recorder> {
    return new Recorder(await _openDevice(true, options), options.chunkMs ?? 100);
  }

  /** Counters (frames captured, frames dropped because JS did not read in time, ...). */
  stats(): DeviceStats {
    if (this.closed) throw new Error("Recorder is closed");
    return _stats(this.d.lib, this.d.ptr);
  }

  /** Takes whatever is captured now (maybe empty) without waiting. */
  readAvailable(): Int16Array {
    if (this.closed) return new Int16Array(0);
    const { lib, ptr, channels } = this.d;
    const frames = lib.ss_device_queued(ptr);
    const buf = new Int16Array(frames * channels);
    const n = frames > 0 ? lib.ss_device_read(ptr, buf, frames) : 0;
    return buf.subarray(0, n * channels);
  }

  /**
   * Waits for the next chunk of about `chunkMs`; null once closed.
   * @param options signal cancels the wait
   */
  async read(options: { signal?: AbortSignal } = {}): Promise<Int16Array | null> {
    for (;;) {
      if (this.closed) return null;
      options.signal?.throwIfAborted();
      const queued = this.d.lib.ss_device_queued(this.d.ptr);
      if (queued >= this.#chunkFrames) return this.readAvailable();
      const waitMs = (this.#chunkFrames - queued) * 1000 / this.d.sampleRate;
      await _sleep(Math.max(2, Math.min(this.d.periodMs, waitMs)), options.signal);
    }
  }

  /** Yields chunks until close(). */
  async *[Symbol.asyncIterator](): AsyncIterator<Int16Array> {
    for (;;) {
      const c = await this.read();
      if (c === null) return;
      yield c;
    }
  }
}
