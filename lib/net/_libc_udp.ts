/**
 * The few libc calls the UDP fan-out needs, through FFI (Linux only): Deno does not expose a
 * socket's file descriptor, nor `sendmmsg(2)`, which hands the kernel a whole batch of
 * datagrams in one system call. Everything here returns null or false where it is not
 * available (another OS, no `--allow-ffi`/`--allow-read`, no glibc), and callers then use
 * Deno's own `send()`.
 *
 * @module
 */

/** The libc functions used, as `Deno.dlopen` declares them. */
export const SYMBOLS = {
  // int getsockname(int fd, struct sockaddr *addr, socklen_t *len);
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int getsockopt(int fd, int level, int name, void *value, socklen_t *len);
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // int sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
  sendmmsg: { parameters: ["i32", "pointer", "u32", "i32"], result: "i32" },
} as const;

const SOL_SOCKET = 1;
const SO_TYPE = 3;
const SOCK_DGRAM = 2;
/** Linux's IPv4 address family (`sa_family_t`, host byte order). */
export const AF_INET = 2;
/** Linux's IPv6 address family. */
export const AF_INET6 = 10;
/** `send` flag: never block (the socket is Deno's, already non-blocking; this makes sure). */
export const MSG_DONTWAIT = 0x40;

/** The libc functions of {@linkcode SYMBOLS}, callable. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | null | undefined;

/** libc's socket calls, or null where FFI, /proc or glibc is not available. */
export function libcUdp(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return libc; // the struct layouts below are those of 64-bit Linux
  }
  try {
    const granted = (name: "ffi" | "read", path?: string) =>
      Deno.permissions.querySync(name === "ffi" ? { name } : { name, path }).state === "granted";
    if (!granted("ffi") || !granted("read", "/proc/self/fd")) return libc;
    libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * The file descriptor of this process's UDP socket bound to `port` in `family`, found by asking
 * each open socket its type and address. Undefined if there is not exactly one.
 */
export function findUdpSocketFd(family: number, port: number): number | undefined {
  const c = libcUdp();
  if (!c) return undefined;
  const found: number[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc/self/fd")];
  } catch {
    return undefined;
  }
  const value = new Uint8Array(128);
  const length = new Uint32Array(1);
  const lengthBytes = new Uint8Array(length.buffer);
  for (const entry of entries) {
    const fd = Number(entry.name);
    if (!Number.isInteger(fd)) continue;
    try {
      if (!Deno.readLinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")) continue;
    } catch {
      continue; // closed meanwhile
    }
    length[0] = 4;
    if (c.getsockopt(fd, SOL_SOCKET, SO_TYPE, value, lengthBytes) !== 0) continue;
    if (new DataView(value.buffer).getInt32(0, true) !== SOCK_DGRAM) continue;
    length[0] = value.length;
    if (c.getsockname(fd, value, lengthBytes) !== 0) continue;
    const view = new DataView(value.buffer);
    if (view.getUint16(0, true) === family && view.getUint16(2, false) === port) found.push(fd);
  }
  return found.length === 1 ? found[0] : undefined;
}
