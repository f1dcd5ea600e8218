/**
 * Typed errors of lib/audio. Messages are written for the person running a tool: they say what
 * failed and, where we know it, how to fix it. The original error is kept as `cause`.
 *
 * @module
 */

/** The native audio library (miniaudio + our C shim) could not be built or loaded. */
export class AudioLibraryError extends Error {
  /**
   * @param message user-facing message, e.g. `Cannot load miniaudio: ...`
   * @param options standard error options; `cause` is kept
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AudioLibraryError";
  }
}

/** A file or byte stream could not be decoded (not audio, corrupt, truncated, unsupported). */
export class AudioDecodeError extends Error {
  /** The file that failed, or `undefined` for in-memory bytes. */
  readonly path: string | undefined;
  /**
   * @param message user-facing message, e.g. `Cannot decode "songs/x.mp3": not an audio file`
   * @param path the file that failed, if any
   * @param options standard error options; `cause` is kept
   */
  constructor(message: string, path?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AudioDecodeError";
    this.path = path;
  }
}

/** An audio device could not be found, opened or started. */
export class AudioDeviceError extends Error {
  /** Names of the devices that are available (filled in when a device was not found). */
  readonly available: readonly string[];
  /**
   * @param message user-facing message
   * @param available names of the devices that are available
   * @param options standard error options; `cause` is kept
   */
  constructor(message: string, available: readonly string[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = "AudioDeviceError";
    this.available = available;
  }
}

/** Builds the `Cannot decode "<path>": <reason>` message used for every decode failure. */
export function _decodeError(
  path: string | undefined,
  reason: string,
  cause?: unknown,
): AudioDecodeError {
  const what = path === undefined ? "audio data" : `"${path}"`;
  return new AudioDecodeError(
    `Cannot decode ${what}: ${reason}`,
    path,
    cause === undefined ? undefined : { cause },
  );
}
