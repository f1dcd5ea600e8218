/**
 * Player: plays 16-bit PCM on a device through miniaudio. JS writes into a C ring buffer; the
 * audio thread drains it (see native/soundsock_audio.c).
 *
 * @module
 */

import { _DeviceHandle, _openDevice, _sleep, _stats } from "./_device.ts";
import type { _Opened, DeviceOptions, DeviceStats } from "./_device.ts";

/** Options of {@linkcode Player.open}; see {@linkcode DeviceOptions}. */
export type PlayerOptions = DeviceOptions;

/** Options of write() and drain(). */
export interface PlayerWaitOptions {
  /** Stops waiting (the promise rejects with the abort reason). */
  signal?: AbortSignal;
}

/** A playback device. Create with {@linkcode Player.open}; close with close() or `await using`. */
export class Player extends _DeviceHandle {
  private constructor(d: _Opened) {
    super(d);
  }

  /**
   * Opens and starts a playback device (silence until the first write).
   * @throws {AudioDeviceError} device not found (message lists the devices) or cannot be opened
   */
  static async open(options: PlayerOptions = {}): Promise<Player> {
    return new Player(await _openDevice(false, options));
  }

  /** Frames written but not yet consumed by the device. */
  get queuedFrames(): number {
    return this.closed ? 0 : this.d.lib.ss_device_queued(this.d.ptr);
  }
  /** queuedFrames in milliseconds. */
  get queuedMs(): number {
    return this.queuedFrames * 1000 / this.d.sampleRate;
  }
  /** Frames the device has consumed so far. */
  get framesConsumed(): number {
    return this.stats().frames;
  }
  /** Device callbacks that found the ring short while playing (audible gaps). */
  get underruns(): number {
    return this.stats().underruns;
  }
  /** All counters at once. */
  stats(): DeviceStats {
    if (this.closed) throw new Error("Player is closed");
    return _stats(this.d.lib, this.d.ptr);
  }

  /**
   * Queues interleaved PCM; waits while the ring is full (backpressure).
   * @throws the signal's reason when aborted; Error when closed
   */
  async write(pcm: Int16Array, options: PlayerWaitOptions = {}): Promise<void> {
    const ch = this.d.channels;
    if (pcm.length % ch !== 0) {
      throw new RangeError(`PCM length ${pcm.length} is not a multiple of ${ch} channels`);
    }
    let off = 0;
    while (off < pcm.length) {
      if (this.closed) throw new Error("Player is closed");
      options.signal?.throwIfAborted();
      const rest = pcm.subarray(off);
      const n = this.d.lib.ss_device_write(this.d.ptr, rest, rest.length / ch);
      off += n * ch;
      if (off < pcm.length) {
        // Ring full: wait about the time the device needs to free what we still have to write,
        // at least 2 ms and at most one period.
        const needMs = ((pcm.length - off) / ch) * 1000 / this.d.sampleRate;
        await _sleep(Math.max(2, Math.min(this.d.periodMs, needMs)), options.signal);
      }
    }
  }

  /**
   * Waits until everything written has been handed to the device, plus one device buffer so it
   * is audible. A short ring after this is not counted as an underrun.
   */
  async drain(options: PlayerWaitOptions = {}): Promise<void> {
    if (this.closed) return;
    this.d.lib.ss_device_idle(this.d.ptr);
    while (!this.closed && this.queuedFrames > 0) {
      await _sleep(Math.max(2, Math.min(this.d.periodMs, this.queuedMs)), options.signal);
    }
    // The backend still holds up to a few periods of audio after the ring is empty.
    if (!this.closed && this.d.backend !== "null") {
      await _sleep(this.d.periodMs * 3, options.signal);
    }
  }
}
