/**
 * One datagram to many peers — the radio's hot path. On Linux each round is handed to the
 * kernel with `sendmmsg(2)`, up to 1024 datagrams per system call, from a table of peer
 * addresses built once when a peer joins (bench/RESULTS-udp-fanout.md: 2.9–3.2 µs of CPU per
 * datagram against 9.1 µs for one `send()` each at 1000 peers). Elsewhere, or for a datagram
 * the kernel did not take at once, it falls back to the socket's own `send()`, which waits for
 * the socket to be writable; so nothing is dropped that the old path would have sent.
 *
 * @module
 */

import { AF_INET, AF_INET6, libcUdp, MSG_DONTWAIT } from "./_libc_udp.ts";
import { expandIpv6 } from "./source_key.ts";
import type { UdpSocket } from "./udp_socket.ts";

/** Bytes of one `struct mmsghdr` (a `msghdr` and the length sent) on 64-bit Linux. */
const MMSGHDR_SIZE = 64;
/** Bytes reserved per peer address: a `sockaddr_in6` (a `sockaddr_in` takes 16). */
const NAME_SIZE = 28;
/** The kernel's limit on messages per `sendmmsg` call (UIO_MAXIOV). */
const MAX_BATCH = 1024;
/** The largest datagram the batch path carries (bigger ones go through `send()`). */
const MAX_DATAGRAM = 65_536;

/** The pointer of a buffer's first byte as a number (its backing store never moves). */
function address(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

/**
 * The peer as a socket address for a socket of `family`, or undefined if it cannot be written
 * as one (a scoped IPv6 address, an IPv6 peer on an IPv4 socket).
 */
export function encodeSockaddr(
  family: number,
  to: Deno.NetAddr,
  out: DataView,
  at: number,
): number | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(to.hostname);
  const bytes4 = v4?.slice(1).map(Number);
  if (bytes4?.some((b) => b > 255)) return undefined;
  if (family === AF_INET) {
    if (!bytes4) return undefined;
    out.setUint16(at, AF_INET, true);
    out.setUint16(at + 2, to.port, false);
    bytes4.forEach((b, i) => out.setUint8(at + 4 + i, b));
    for (let i = 8; i < 16; i++) out.setUint8(at + i, 0);
    return 16;
  }
  if (family !== AF_INET6 || to.hostname.includes("%")) return undefined;
  const groups = bytes4
    ? [0, 0, 0, 0, 0, 0xffff, (bytes4[0]! << 8) | bytes4[1]!, (bytes4[2]! << 8) | bytes4[3]!]
    : expandIpv6(to.hostname.toLowerCase());
  if (!groups) return undefined;
  out.setUint16(at, AF_INET6, true);
  out.setUint16(at + 2, to.port, false);
  out.setUint32(at + 4, 0); // flow info
  groups.forEach((g, i) => out.setUint16(at + 8 + 2 * i, g, false));
  out.setUint32(at + 24, 0, true); // scope id
  return 28;
}

/** The peers a datagram is fanned out to, and the send itself. */
export class UdpFanOut {
  readonly #socket: UdpSocket;
  /** Peers in the batch table, by slot; `#slots` maps a key to its slot. */
  #keys: string[] = [];
  #addrs: Deno.NetAddr[] = [];
  readonly #slots = new Map<string, number>();
  /** Peers whose address the table cannot hold: sent one by one. */
  readonly #others = new Map<string, Deno.NetAddr>();
  #capacity = 0;
  #names = new Uint8Array(0);
  #table = new Uint8Array(0);
  readonly #iov = new Uint8Array(16);
  readonly #payload = new Uint8Array(MAX_DATAGRAM);

  /** A fan-out over `socket` (its own `send()` is the fallback). */
  constructor(socket: UdpSocket) {
    this.#socket = socket;
  }

  /** Number of peers. */
  get size(): number {
    return this.#keys.length + this.#others.size;
  }

  /** Whether rounds go to the kernel in batches (`sendmmsg`), not one `send()` each. */
  get batched(): boolean {
    return this.#socket.nativeFd() !== undefined;
  }

  /** Adds (or moves) the peer `key`. */
  add(key: string, to: Deno.NetAddr): void {
    this.delete(key);
    const family = this.#socket.nativeFd() === undefined ? undefined : this.#socket.family;
    if (family === undefined) {
      this.#others.set(key, to);
      return;
    }
    const slot = this.#keys.length;
    if (slot === this.#capacity) this.#grow();
    const nameLength = encodeSockaddr(
      family,
      to,
      new DataView(this.#names.buffer),
      slot * NAME_SIZE,
    );
    if (nameLength === undefined) {
      this.#others.set(key, to);
      return;
    }
    this.#keys.push(key);
    this.#addrs.push(to);
    this.#slots.set(key, slot);
    new DataView(this.#table.buffer).setUint32(slot * MMSGHDR_SIZE + 8, nameLength, true);
  }

  /** Removes the peer `key` (no-op if absent). */
  delete(key: string): void {
    if (this.#others.delete(key)) return;
    const slot = this.#slots.get(key);
    if (slot === undefined) return;
    this.#slots.delete(key);
    // The last peer takes the freed slot, so the table stays dense.
    const last = this.#keys.length - 1;
    const lastKey = this.#keys.pop()!;
    const lastAddr = this.#addrs.pop()!;
    if (slot === last) return;
    this.#keys[slot] = lastKey;
    this.#addrs[slot] = lastAddr;
    this.#slots.set(lastKey, slot);
    this.#names.copyWithin(slot * NAME_SIZE, last * NAME_SIZE, (last + 1) * NAME_SIZE);
    const table = new DataView(this.#table.buffer);
    table.setUint32(slot * MMSGHDR_SIZE + 8, table.getUint32(last * MMSGHDR_SIZE + 8, true), true);
  }

  /**
   * Sends `bytes` to every peer. Resolves once every datagram has left (those the kernel took
   * at once already have when this returns).
   */
  send(bytes: Uint8Array): Promise<unknown> {
    const later: Promise<boolean>[] = [];
    const socket = this.#socket;
    for (const to of this.#others.values()) later.push(socket.send(bytes, to));
    const fd = socket.nativeFd();
    const libc = libcUdp();
    const count = this.#keys.length;
    if (fd === undefined || !libc || count === 0 || bytes.length > MAX_DATAGRAM) {
      for (const to of this.#addrs) later.push(socket.send(bytes, to));
      return Promise.all(later);
    }
    this.#payload.set(bytes);
    new DataView(this.#iov.buffer).setBigUint64(8, BigInt(bytes.length), true);
    const table = Deno.UnsafePointer.of(this.#table);
    let next = 0;
    while (next < count) {
      const batch = Math.min(MAX_BATCH, count - next);
      const at = Deno.UnsafePointer.offset(table!, next * MMSGHDR_SIZE);
      const took = Math.max(0, libc.sendmmsg(fd, at, batch, MSG_DONTWAIT));
      socket.sent += took;
      next += took;
      if (took < batch) {
        // The kernel refused this one (full buffer, unreachable peer): send() waits for room
        // or counts the error; the batch goes on after it.
        later.push(socket.send(bytes, this.#addrs[next]!));
        next++;
      }
    }
    return later.length === 0 ? Promise.resolve() : Promise.all(later);
  }

  #grow(): void {
    const capacity = Math.max(64, this.#capacity * 2);
    const names = new Uint8Array(capacity * NAME_SIZE);
    names.set(this.#names);
    const table = new Uint8Array(capacity * MMSGHDR_SIZE);
    table.set(this.#table);
    // Every entry points at its own address slot and at the one shared iovec (the payload).
    // Pointers only here: this runs only once the descriptor was found (FFI is allowed).
    new DataView(this.#iov.buffer).setBigUint64(0, address(this.#payload), true);
    const view = new DataView(table.buffer);
    const namesAt = address(names);
    const iovAt = address(this.#iov);
    for (let slot = 0; slot < capacity; slot++) {
      const at = slot * MMSGHDR_SIZE;
      view.setBigUint64(at, namesAt + BigInt(slot * NAME_SIZE), true); // msg_name
      view.setBigUint64(at + 16, iovAt, true); // msg_iov
      view.setBigUint64(at + 24, 1n, true); // msg_iovlen
    }
    this.#names = names;
    this.#table = table;
    this.#capacity = capacity;
  }
}
