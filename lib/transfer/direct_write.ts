/**
 * Writes that bypass the page cache (O_DIRECT), for the receiver's `.part` files: the device
 * reads the caller's buffer itself, instead of the kernel copying every byte into freshly
 * allocated cache pages first. Measured on this project's VMs, that copy costs more CPU than
 * hashing the file (1.8 s of system time per GiB, against 0.16 s with O_DIRECT: `dd
 * oflag=direct`), and a 100 GiB transfer would otherwise push everything else out of the cache.
 *
 * O_DIRECT wants the buffer's address, the file offset and the length to be multiples of the
 * device's block size: {@linkcode alignedBuffer} makes buffers that start on a 4096-byte
 * boundary, chunks start at multiples of 4 MiB, and {@linkcode DirectWriter.writeAligned}
 * writes the 4096-byte multiple at the head of what it is given; the caller writes the tail (a
 * file's last few bytes) through its ordinary descriptor. Where the native library cannot be
 * loaded, FFI is not allowed, or the file system refuses O_DIRECT, {@linkcode
 * DirectWriter.open} returns null and the caller writes as before.
 *
 * Durability is unchanged: an O_DIRECT write may still sit in the device's cache, and the
 * caller's fdatasync flushes it (and the file's size) as it does for buffered writes.
 *
 * @module
 */

import { ensureTlsLibrary } from "../tls/native/build.ts";

/** The alignment used for addresses, offsets and lengths (the largest common block size). */
export const DIRECT_ALIGNMENT = 4096;

const symbols = {
  sst_open_direct: { parameters: ["buffer", "buffer"], result: "i32" },
  sst_pwrite_all: {
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "i64",
    nonblocking: true,
  },
  sst_close_fd: { parameters: ["i32"], result: "i32" },
} as const;

let library: Promise<Deno.DynamicLibrary<typeof symbols>["symbols"] | null> | undefined;

function directLibrary(): Promise<Deno.DynamicLibrary<typeof symbols>["symbols"] | null> {
  library ??= (async () => {
    if (Deno.env.get("SOUNDSOCK_DIRECT_IO") === "0") return null;
    try {
      const path = Deno.env.get("SOUNDSOCK_TLS_LIB") ?? await ensureTlsLibrary();
      return Deno.dlopen(path, symbols).symbols;
    } catch {
      return null; // no C compiler or OpenSSL headers, or FFI not allowed: buffered writes
    }
  })();
  return library;
}

/** Linux errno values a write to a file can end with, as Deno words them. */
const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  5: "Input/output error",
  9: "Bad file descriptor",
  13: "Permission denied",
  22: "Invalid argument",
  27: "File too large",
  28: "No space left on device",
  30: "Read-only file system",
  122: "Disk quota exceeded",
};

/** A failed O_DIRECT write, worded like Deno's own I/O errors ("… (os error 28)"). */
export class DirectWriteError extends Error {
  override name = "DirectWriteError";
  /** The errno value. */
  readonly errno: number;
  constructor(errno: number) {
    super(`${ERRNO_TEXT[errno] ?? "I/O error"} (os error ${errno})`);
    this.errno = errno;
  }
}

/**
 * `length` bytes starting on a {@linkcode DIRECT_ALIGNMENT} boundary (a view into a slightly
 * larger buffer; a large ArrayBuffer's memory does not move). Without FFI, a plain buffer.
 */
export function alignedBuffer(length: number): Uint8Array {
  const backing = new Uint8Array(length + DIRECT_ALIGNMENT);
  let address: bigint;
  try {
    address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(backing)));
  } catch {
    return backing.subarray(0, length);
  }
  const skip = Number(
    (BigInt(DIRECT_ALIGNMENT) - address % BigInt(DIRECT_ALIGNMENT)) %
      BigInt(DIRECT_ALIGNMENT),
  );
  return backing.subarray(skip, skip + length);
}

function isAligned(bytes: Uint8Array): boolean {
  try {
    const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
    return address % BigInt(DIRECT_ALIGNMENT) === 0n;
  } catch {
    return false;
  }
}

/** A second, O_DIRECT descriptor of a file the caller has open. */
export class DirectWriter implements Disposable {
  readonly #lib: NonNullable<Awaited<ReturnType<typeof directLibrary>>>;
  #fd: number;
  /** Writes under way on worker threads: the descriptor is closed only after the last one
   * (its number could otherwise be reused by another file while a queued write waits). */
  #pending = 0;
  #closing = false;

  private constructor(lib: NonNullable<Awaited<ReturnType<typeof directLibrary>>>, fd: number) {
    this.#lib = lib;
    this.#fd = fd;
  }

  /**
   * Opens `path` with O_DIRECT (never through a link) when it is the very file `opened`
   * describes (same device and inode). Null where direct writes are not available: no native
   * library, no FFI permission, a file system without O_DIRECT, or a different file.
   */
  static async open(path: string, opened: Deno.FileInfo): Promise<DirectWriter | null> {
    const lib = await directLibrary();
    if (!lib || opened.ino === null) return null;
    const ids = new BigUint64Array(2);
    const fd = lib.sst_open_direct(new TextEncoder().encode(`${path}\0`), ids);
    if (fd < 0) return null;
    if (ids[0] !== BigInt(opened.dev) || ids[1] !== BigInt(opened.ino)) {
      lib.sst_close_fd(fd);
      return null;
    }
    return new DirectWriter(lib, fd);
  }

  /**
   * Writes the largest multiple of {@linkcode DIRECT_ALIGNMENT} at the head of `bytes` at
   * `offset` and resolves to how many bytes that was — 0 when `bytes` or `offset` is not
   * aligned (the caller writes everything itself then). `bytes` must not change until it
   * resolves.
   * @throws {DirectWriteError} when the write fails (disk full, I/O error)
   */
  async writeAligned(bytes: Uint8Array, offset: number): Promise<number> {
    if (this.#closing) throw new DirectWriteError(9);
    const length = bytes.length - bytes.length % DIRECT_ALIGNMENT;
    if (length === 0 || offset % DIRECT_ALIGNMENT !== 0 || !isAligned(bytes)) return 0;
    this.#pending++;
    let result: bigint | number;
    try {
      result = await this.#lib.sst_pwrite_all(
        this.#fd,
        bytes.subarray(0, length),
        BigInt(length),
        BigInt(offset),
      );
    } finally {
      this.#pending--;
      if (this.#closing) this.#closeNow();
    }
    if (result < 0) throw new DirectWriteError(-Number(result));
    return length;
  }

  /** Closes the descriptor (idempotent): now, or once the writes under way have ended. */
  close(): void {
    this.#closing = true;
    this.#closeNow();
  }

  #closeNow(): void {
    if (this.#pending > 0 || this.#fd < 0) return;
    this.#lib.sst_close_fd(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
