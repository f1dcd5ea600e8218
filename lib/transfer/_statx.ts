/**
 * A file's identity with nanosecond times: Deno's `FileInfo` gives mtime in ms and ctime in
 * whole seconds, too coarse to tell a file apart from itself rewritten within a second (with
 * its mtime set back). On Linux, with FFI allowed, `statx(2)` from libc gives both in ns;
 * elsewhere the `FileInfo` fields are used. FFI for file-send lives in this one file.
 *
 * @module
 */

const SYMBOLS = {
  // int statx(int dirfd, const char *pathname, int flags, unsigned int mask,
  //           struct statx *statxbuf);
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
} as const;

const AT_FDCWD = -100;
const STATX_BASIC_STATS_AND_BTIME = 0x7ff | 0x800;

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null | undefined;

function load(): Deno.DynamicLibrary<typeof SYMBOLS> | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (Deno.build.os !== "linux") return lib;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return lib;
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    lib = null;
  }
  return lib;
}

/**
 * `dev:ino:size:mtime:ctime:btime` of `path` (following links): times in ns from statx, or
 * in the runtime's precision from `fallback` (the same file's `FileInfo`) when statx is not
 * available.
 */
export function statKey(path: string, fallback: Deno.FileInfo): string {
  const libc = load();
  if (libc) {
    const buf = new Uint8Array(256);
    const name = new TextEncoder().encode(`${path}\0`);
    if (libc.symbols.statx(AT_FDCWD, name, 0, STATX_BASIC_STATS_AND_BTIME, buf) === 0) {
      const v = new DataView(buf.buffer);
      const time = (at: number) =>
        v.getBigInt64(at, true) * 1_000_000_000n +
        BigInt(v.getUint32(at + 8, true));
      return [
        `${v.getUint32(136, true)},${v.getUint32(140, true)}`, // dev major, minor
        v.getBigUint64(32, true), // ino
        v.getBigUint64(40, true), // size
        time(112), // mtime
        time(96), // ctime
        time(80), // btime
      ].join(":");
    }
  }
  return [
    fallback.dev,
    fallback.ino ?? "",
    fallback.size,
    fallback.mtime?.getTime() ?? "",
    fallback.ctime?.getTime() ?? "",
    fallback.birthtime?.getTime() ?? "",
  ].join(":");
}
