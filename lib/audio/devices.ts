/**
 * Audio backends and device enumeration.
 *
 * @module
 */

import { AudioDeviceError } from "./errors.ts";
import { _resultText, type AudioLib, loadAudioLib } from "./ffi.ts";

/** Audio backends: "auto" tries PulseAudio, then ALSA; "null" plays into nothing, in real time. */
export type AudioBackend = "auto" | "pulse" | "alsa" | "null";

/** All backend names, for command-line validation. */
export const AUDIO_BACKENDS: readonly AudioBackend[] = ["auto", "pulse", "alsa", "null"];

/** C codes of the backends (see native/soundsock_audio.c). */
export const _BACKEND_CODE: Record<AudioBackend, number> = { auto: 0, pulse: 1, alsa: 2, null: 3 };

/** Backend name of a C code. */
export function _backendName(code: number): Exclude<AudioBackend, "auto"> {
  return (["null", "pulse", "alsa", "null"] as const)[code] ?? "null";
}

/** One playback or capture device. */
export interface AudioDevice {
  /** Name as the backend reports it (PulseAudio: the sink / source description). */
  name: string;
  /** Position in the backend's list; also accepted as `device` option ("#2" or "2"). */
  index: number;
  /** Is it the backend's default device? */
  isDefault: boolean;
}

/** Result of {@linkcode listDevices}. */
export interface DeviceList {
  /** The backend that answered (never "auto"). */
  backend: Exclude<AudioBackend, "auto">;
  /** Playback devices. */
  playback: AudioDevice[];
  /** Capture devices. */
  capture: AudioDevice[];
}

/** Options of {@linkcode listDevices}. */
export interface ListDevicesOptions {
  /**
   * Backend to ask.
   * @default "auto"
   */
  backend?: AudioBackend;
}

/**
 * Lists playback and capture devices of a backend.
 * @throws {AudioDeviceError} when the backend is not available
 */
export async function listDevices(options: ListDevicesOptions = {}): Promise<DeviceList> {
  const lib = await loadAudioLib();
  const backend = options.backend ?? "auto";
  const playback = await _list(lib, backend, false);
  const capture = await _list(lib, backend, true);
  return { backend: playback.backend, playback: playback.devices, capture: capture.devices };
}

/** Lists one direction; throws AudioDeviceError if the backend cannot be used. */
export async function _list(
  lib: AudioLib,
  backend: AudioBackend,
  capture: boolean,
): Promise<{ backend: Exclude<AudioBackend, "auto">; devices: AudioDevice[] }> {
  const out = new Uint8Array(64 * 1024);
  const used = new Int32Array(1);
  const n = await lib.ss_list_devices(
    _BACKEND_CODE[backend],
    capture ? 1 : 0,
    out,
    out.length,
    used,
  );
  if (n < 0) {
    throw new AudioDeviceError(
      `Cannot use the ${backend} audio backend: ${_resultText(lib, n)}`,
    );
  }
  const text = new TextDecoder().decode(out.subarray(0, out.indexOf(0)));
  const devices = text.split("\n").filter((l) => l !== "").map((line, index) => {
    const tab = line.indexOf("\t");
    return { name: line.slice(tab + 1), index, isDefault: line.slice(0, tab) === "1" };
  });
  return { backend: _backendName(used[0]!), devices };
}

/**
 * Finds a device by exact name, then case-insensitive substring, then index ("2" / "#2").
 * @throws {AudioDeviceError} listing the available devices
 */
export function _findDevice(
  devices: AudioDevice[],
  wanted: string,
  kind: "playback" | "capture",
  backend: string,
): AudioDevice {
  const lower = wanted.toLowerCase();
  const byIndex = /^#?\d+$/.test(wanted) ? devices[Number(wanted.replace("#", ""))] : undefined;
  const found = devices.find((d) => d.name === wanted) ??
    devices.find((d) => d.name.toLowerCase().includes(lower)) ?? byIndex;
  if (found) return found;
  const names = devices.map((d) => d.name);
  const list = names.length ? names.map((n, i) => `  #${i} ${n}`).join("\n") : "  (none)";
  throw new AudioDeviceError(
    `Audio ${kind} device "${wanted}" not found (backend ${backend}). Available:\n${list}`,
    names,
  );
}
