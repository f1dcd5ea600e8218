/**
 * Shared plumbing of Player and Recorder: opening a native device (with device lookup and the
 * null fallback), counters, and an abortable sleep for polling.
 *
 * Why polling: a device callback runs on miniaudio's thread and must never call JavaScript, so
 * JS learns about ring-buffer space / data only by asking (cheap synchronous FFI calls).
 *
 * @module
 */

import { AudioDeviceError } from "./errors.ts";
import { _resultText, _track, _untrack, type AudioLib, loadAudioLib } from "./ffi.ts";
import {
  _BACKEND_CODE,
  _backendName,
  _findDevice,
  _list,
  type AudioBackend,
  type AudioDevice,
} from "./devices.ts";

/** Options shared by Player and Recorder. */
export interface DeviceOptions {
  /**
   * Stream sample rate in Hz (miniaudio converts to the device's rate).
   * @default 44100
   */
  sampleRate?: number;
  /**
   * Stream channels (miniaudio converts to the device's layout).
   * @default 2
   */
  channels?: number;
  /**
   * Backend; "auto" falls back to "null" when no real device can be opened.
   * @default "auto"
   */
  backend?: AudioBackend;
  /**
   * Device name (exact, or a case-insensitive part of it) or index "#2"; default device if unset.
   * @default undefined
   */
  device?: string;
  /**
   * Device period in ms. PulseAudio needs >= 50 ms for gap-free playback on our VMs.
   * @default 50
   */
  periodMs?: number;
  /**
   * Ring buffer between JS and the audio thread, in ms.
   * @default 500
   */
  ringMs?: number;
  /** Cancels opening. */
  signal?: AbortSignal;
}

/** A native device opened and started. */
export interface _Opened {
  lib: AudioLib;
  ptr: NonNullable<Deno.PointerValue>;
  backend: Exclude<AudioBackend, "auto">;
  deviceName: string;
  fellBackToNull: boolean;
  sampleRate: number;
  channels: number;
  periodMs: number;
  openedAtNs: bigint;
}

/** Opens and starts a device, resolving names and falling back to null for "auto". */
export async function _openDevice(capture: boolean, options: DeviceOptions): Promise<_Opened> {
  const lib = await loadAudioLib();
  const openedAtNs = BigInt(lib.ss_now_ns());
  const sampleRate = options.sampleRate ?? 44100;
  const channels = options.channels ?? 2;
  const backend = options.backend ?? "auto";
  const periodMs = Math.max(1, Math.round(options.periodMs ?? 50));
  const ringMs = Math.max(periodMs * 4, Math.round(options.ringMs ?? 500));
  const kind = capture ? "capture" : "playback";
  if (!Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 384000) {
    throw new RangeError(`Invalid sample rate ${sampleRate}`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 8) {
    throw new RangeError(`Invalid channel count ${channels}`);
  }
  options.signal?.throwIfAborted();

  let index = -1;
  let chosen: AudioDevice | undefined;
  if (options.device !== undefined && options.device !== "") {
    const { devices, backend: used } = await _list(lib, backend, capture);
    chosen = _findDevice(devices, options.device, kind, used);
    index = chosen.index;
  }
  const result = new Int32Array(1);
  const open = (code: number) =>
    lib.ss_device_open(
      code,
      capture ? 1 : 0,
      index,
      sampleRate,
      channels,
      periodMs,
      ringMs,
      result,
    );
  let ptr = await open(_BACKEND_CODE[backend]);
  let fellBackToNull = false;
  if (ptr === null && backend === "auto" && index < 0) {
    // No usable PulseAudio / ALSA device: keep working in real time into nothing.
    ptr = await open(_BACKEND_CODE.null);
    fellBackToNull = ptr !== null;
  }
  if (ptr === null) {
    const what = chosen ? `"${chosen.name}"` : "the default device";
    throw new AudioDeviceError(
      `Cannot open ${kind} ${what} (backend ${backend}): ${_resultText(lib, result[0]!)}`,
    );
  }
  const r = await lib.ss_device_start(ptr);
  if (r !== 0) {
    await lib.ss_device_close(ptr);
    throw new AudioDeviceError(`Cannot start ${kind} device: ${_resultText(lib, r)}`);
  }
  const namePtr = lib.ss_device_name(ptr);
  return {
    lib,
    ptr,
    backend: _backendName(lib.ss_device_backend(ptr)),
    deviceName: namePtr === null ? "" : Deno.UnsafePointerView.getCString(namePtr),
    fellBackToNull,
    sampleRate,
    channels,
    periodMs,
    openedAtNs,
  };
}

/** Device counters read from C. */
export interface DeviceStats {
  /** Playback: frames consumed by the device; capture: frames captured. */
  frames: number;
  /** Playback: silent frames inserted by underruns; capture: frames dropped (ring full). */
  framesLost: number;
  /** Playback: device callbacks that found the ring short while playing. */
  underruns: number;
  /** Monotonic time (ns, same clock as `openedAtNs`) of the first real frame; 0n if none yet. */
  firstFrameAtNs: bigint;
  /** The device's own sample rate (miniaudio converts between it and ours). */
  deviceSampleRate: number;
}

/** Reads the counters of a device. */
export function _stats(lib: AudioLib, ptr: NonNullable<Deno.PointerValue>): DeviceStats {
  const s = new BigUint64Array(5);
  lib.ss_device_stats(ptr, s);
  return {
    frames: Number(s[0]),
    framesLost: Number(s[1]),
    underruns: Number(s[2]),
    firstFrameAtNs: s[3]!,
    deviceSampleRate: Number(s[4]),
  };
}

/** Sleeps `ms`, rejecting with the signal's reason when it aborts. */
export function _sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * What a Player and a Recorder both expose about their open device (read-only facts of the
 * opened device; the subclasses add playing or capturing).
 */
export abstract class _DeviceHandle implements AsyncDisposable {
  /** The opened native device. */
  protected readonly d: _Opened;

  #closed = false;
  #closing: Promise<void> | undefined;

  /** Wraps an opened device and tracks it, so unloading the library closes it first. */
  protected constructor(d: _Opened) {
    this.d = d;
    _track(this);
  }

  /** Whether close() was called. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops the device and frees it (miniaudio stops before uninit, so a capture device without
   * data cannot hang). Idempotent; a Player does not drain here (call drain() first).
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    _untrack(this);
    this.#closing = this.d.lib.ss_device_close(this.d.ptr);
    return this.#closing;
  }

  /** @internal synchronous close while the library unloads */
  _closeSync(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = Promise.resolve();
    this.d.lib.ss_device_close_sync(this.d.ptr);
  }

  /** Same as {@linkcode close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Backend in use ("null" after a fallback: silent). */
  get backend(): Exclude<AudioBackend, "auto"> {
    return this.d.backend;
  }
  /** True when backend "auto" found no real device and uses the null backend. */
  get fellBackToNull(): boolean {
    return this.d.fellBackToNull;
  }
  /** Device name as the backend reports it. */
  get deviceName(): string {
    return this.d.deviceName;
  }
  /** Stream sample rate. */
  get sampleRate(): number {
    return this.d.sampleRate;
  }
  /** Stream channels. */
  get channels(): number {
    return this.d.channels;
  }
  /** Monotonic ns timestamp taken when open() started (compare with stats().firstFrameAtNs). */
  get openedAtNs(): bigint {
    return this.d.openedAtNs;
  }
}
