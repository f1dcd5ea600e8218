/**
 * Typed errors of lib/codec. Messages say what failed and, where we know it, how to fix it; the
 * original error is kept as `cause`.
 *
 * @module
 */

/** A codec library (libopus, libsoxr) could not be loaded. */
export class CodecLibraryError extends Error {
  /** The Debian package that provides the library, e.g. `libopus0`. */
  readonly debianPackage: string;
  /**
   * @param message user-facing message naming the package, e.g.
   *   `Cannot load libopus: ... Install it with: apt-get install libopus0`
   * @param debianPackage the Debian package that provides the library
   * @param options standard error options; `cause` is kept
   */
  constructor(message: string, debianPackage: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CodecLibraryError";
    this.debianPackage = debianPackage;
  }
}

/** libopus refused a call (bad packet, bad argument, buffer too small). */
export class OpusError extends Error {
  /** libopus's result code (`OPUS_BAD_ARG` = -1 ... `OPUS_ALLOC_FAIL` = -7). */
  readonly code: number;
  /**
   * @param message user-facing message, e.g. `Cannot decode Opus packet: corrupted stream`
   * @param code the libopus result code
   */
  constructor(message: string, code: number) {
    super(message);
    this.name = "OpusError";
    this.code = code;
  }
}
