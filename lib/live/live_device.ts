/**
 * The device end of a live stream's playout, the same in udp-client and tls-client radio: what
 * sits between the decoded audio of a mic-broadcast and the audio device.
 *
 * - The device's queue is read without its period's sawtooth ({@linkcode DeviceLevel}): its
 *   consumed-frames counter is read on a 3 ms timer of this host's clock as well as at each
 *   write, since readings only at packet arrivals would be locked to the sender's clock.
 * - The first write is two device periods at once ({@linkcode StartBatch}), so the device does
 *   not start on a queue it empties before the next write.
 *
 * What level to keep and how to correct it is the caller's (a {@linkcode DriftController}):
 * udp-client adds its jitter buffer, tls-client its `--buffer auto` steps.
 *
 * @module
 */

import { DeviceLevel, StartBatch } from "./playout_control.ts";

/** How often the device's counter is read between writes (ms). */
const DEVICE_READ_MS = 3;

/** The counters of a playing device (lib/audio/player.ts Player has them). */
export interface DeviceCounters {
  /** Frames written and not played yet. */
  readonly queuedFrames: number;
  /** Frames the device has taken so far. */
  readonly framesConsumed: number;
}

/** Whether `player` (an output's device, if any) has the counters a live stream needs. */
export function hasDeviceCounters(
  player: Partial<DeviceCounters> | undefined,
): player is DeviceCounters {
  return player?.queuedFrames !== undefined && player.framesConsumed !== undefined;
}

/** See the module doc. One per live stream on a device; dispose before the device closes. */
export class LiveDevice implements Disposable {
  /** The device period the output was opened with (ms). */
  readonly periodMs: number;
  readonly #device: DeviceCounters;
  readonly #level: DeviceLevel;
  readonly #start: StartBatch;
  readonly #timer: ReturnType<typeof setInterval>;

  /**
   * Starts reading `device` every few ms.
   *
   * @param device the playing device's counters
   * @param format its rate and interleaved channels
   * @param periodMs its period (lib/live/playout_control.ts livePeriodMs of the buffer)
   */
  constructor(
    device: DeviceCounters,
    format: { sampleRate: number; channels: number },
    periodMs: number,
  ) {
    this.#device = device;
    this.periodMs = periodMs;
    this.#level = new DeviceLevel(format.sampleRate);
    this.#start = new StartBatch(2 * periodMs * format.sampleRate / 1000, format.channels);
    this.#timer = setInterval(
      () => this.#level.observe(device.framesConsumed, performance.now() / 1000),
      DEVICE_READ_MS,
    );
  }

  /** The device's queue now, in frames, as if it read continuously. */
  levelFrames(): number {
    const d = this.#device;
    return this.#level.levelFrames(d.queuedFrames, d.framesConsumed, performance.now() / 1000);
  }

  /** The block to write now: `pcm`, or the start batch once it is full; undefined to hold. */
  toWrite(pcm: Int16Array): Int16Array | undefined {
    return this.#start.add(pcm);
  }

  /** Stops reading the device. */
  [Symbol.dispose](): void {
    clearInterval(this.#timer);
  }
}
