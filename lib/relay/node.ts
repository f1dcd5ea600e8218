/**
 * A relaying radio listener (`tls-client radio --relay`, docs/PROTOCOL.md §9): joins the
 * server's overlay over its verified TLS link, learns the server's public key, its parent and
 * its backup there, receives the signed stream from its parent (the server's TLS link, or a
 * relay parent over plain TCP), verifies every frame before playing *and* before forwarding
 * it, and forwards verified frames unchanged to the children the server assigns it, each
 * through its own bounded send queue. A parent that goes silent (no frame, not even a
 * HEARTBEAT, for `silenceMs`), closes, or sends a frame the server did not sign is reported to
 * the server and replaced at once by the precomputed backup; the gap is in {@linkcode stats}.
 *
 * @module
 */

import { encodeFrame, type Frame, FrameType, STREAM_MAX_PAYLOAD } from "../wire/frame.ts";
import { readFrames } from "../wire/stream_decoder.ts";
import {
  encodeControl,
  readError,
  readNowPlaying,
  readReject,
  readStreamInfo,
} from "../wire/messages.ts";
import { escapePeerText } from "../cli/output.ts";
import type { EventFields } from "../cli/event_log.ts";
import { closeQuietly } from "../net/close.ts";
import { type ConnectOptions, connectToServer, type ServerAddress } from "../tls/connect.ts";
import type { ClientConn } from "../tls/connect.ts";
import { type RadioEvent, ServerConnectionError, ServerRefusedError } from "../tls/client.ts";
import { SendQueue } from "../tls/send_queue.ts";
import { type Assign, encodeRelay, fromBase64, readRelay, type RelayPeer } from "./messages.ts";
import { frameHash, StreamVerifier } from "./signing.ts";

/** Options for {@linkcode RelayNode.start}. */
export interface RelayNodeOptions {
  /** How to verify the server (its TLS certificate). */
  connect?: ConnectOptions;
  /** Address the relay listener binds. @default {"0.0.0.0"} */
  listenHost?: string;
  /** Port of the relay listener (0: any free one). @default {0} */
  listenPort?: number;
  /** Address children are told to connect to. @default the address the server sees */
  announceHost?: string;
  /** A relay parent silent this long (no frame at all) counts as gone. @default {1500} */
  silenceMs?: number;
  /**
   * A relay parent that sends no verified station frame this long (heartbeats alone do not
   * count) counts as gone: a hung or withholding relay. @default {3000}
   */
  stallMs?: number;
  /** HEARTBEAT to each child this often while nothing else is sent. @default {250} */
  heartbeatMs?: number;
  /** Send-queue bound per child in bytes; a child that overflows it is dropped. @default {1048576} */
  childQueueBytes?: number;
  /** Most children connected at once (assigned ones; extras are refused). @default {64} */
  maxChildren?: number;
  /** Every verified station frame, in order (play it). */
  onRadio?: (event: RadioEvent) => void;
  /** Events for logs and tests. */
  onEvent?: (event: string, fields: EventFields) => void;
  /** Test helper: what this node forwards instead of each frame (a tampering relay). */
  tamper?: (bytes: Uint8Array) => Uint8Array;
  /** Stops the node (as a crash would: no leave). */
  signal?: AbortSignal;
}

/** One switch of parent and what it cost. */
export interface Recovery {
  /** Why: the parent was silent or closed, sent a forged frame, or the server moved us. */
  reason: "silent" | "forged" | "moved";
  /** Old parent node (0: the server). */
  from: number;
  /** New parent node (0: the server). */
  to: number;
  /**
   * From the last DATA accepted before the switch to the first after it (ms): about one signed
   * window (1 s) when nothing was lost, since a window arrives as one burst.
   */
  waitMs?: number;
  /** DATA sequence numbers missing across the switch. */
  lostFrames: number;
}

/** What a node counts. */
export interface RelayNodeStats {
  /** Station frames verified and played. */
  frames: number;
  /** DATA sequence numbers never received (gaps). */
  lostFrames: number;
  /** Frames or manifests rejected as forged. */
  forged: number;
  /** Frames already had (from a new parent's replay). */
  duplicates: number;
  /** Parent switches. */
  recoveries: Recovery[];
  /** Children now connected. */
  children: number;
  /** Bytes of stream received from the server's link / from relay parents / sent to children. */
  bytesFromServer: number;
  bytesFromRelays: number;
  bytesToChildren: number;
}

interface Source {
  node: number;
  conn?: Deno.Conn;
  closed: boolean;
  lastFrameAt: number;
  /** performance.now() of the last verified station frame from it (or when it was opened). */
  lastDataAt: number;
  confirmed: boolean;
}

interface Child {
  conn: Deno.Conn;
  queue: SendQueue;
}

const SERVER_NODE = 0;

/** A relaying listener. */
export class RelayNode implements AsyncDisposable {
  /** The relay listener's address. */
  readonly addr: Deno.NetAddr;
  /** Counters. */
  readonly stats: RelayNodeStats = {
    frames: 0,
    lostFrames: 0,
    forged: 0,
    duplicates: 0,
    recoveries: [],
    children: 0,
    bytesFromServer: 0,
    bytesFromRelays: 0,
    bytesToChildren: 0,
  };
  /** Resolves with the first `assign`. */
  readonly joined: Promise<Assign>;
  /** Resolves when the node has stopped. */
  readonly finished: Promise<void>;
  readonly #server: ClientConn;
  readonly #listener: Deno.TcpListener;
  readonly #options: RelayNodeOptions;
  readonly #stop = new AbortController();
  readonly #serverSource: Source;
  #assign: Assign | undefined;
  #verifier: StreamVerifier | undefined;
  #active: Source;
  #previous: Source | undefined;
  /** The current window (its manifest, then the frames accepted so far) and the one before. */
  #window: Uint8Array[] = [];
  #previousWindow: Uint8Array[] = [];
  readonly #children = new Set<Child>();
  #pendingChildren = 0;
  #chain: Promise<void> = Promise.resolve();
  #lastSequence: number | undefined;
  #lastVerifiedAt = 0;
  #recovering: Recovery | undefined;
  #frozen = false;
  #songKeys: string[] = [];
  #closed = false;
  #joinedResolve!: (a: Assign) => void;
  #joinedReject!: (e: Error) => void;
  #acceptWaiters: (() => void)[] = [];

  private constructor(server: ClientConn, listener: Deno.TcpListener, options: RelayNodeOptions) {
    this.#server = server;
    this.#listener = listener;
    this.addr = listener.addr;
    this.#options = options;
    const now = performance.now();
    this.#serverSource = {
      node: SERVER_NODE,
      closed: false,
      lastFrameAt: now,
      lastDataAt: now,
      confirmed: true,
    };
    this.#active = this.#serverSource;
    this.joined = new Promise((resolve, reject) => {
      this.#joinedResolve = resolve;
      this.#joinedReject = reject;
    });
    this.joined.catch(() => {});
    const signal = this.#stop.signal;
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
    const watch = setInterval(() => this.#watch(), 50);
    const beat = setInterval(() => this.#heartbeat(), options.heartbeatMs ?? 250);
    this.finished = Promise.allSettled([this.#readServer(), this.#acceptChildren()]).then(() => {
      clearInterval(watch);
      clearInterval(beat);
      this.close();
    });
    void signal;
  }

  /**
   * Connects to the server, opens the relay listener and joins the overlay.
   * @throws {TlsConnectError} when the server cannot be reached or verified
   */
  static async start(address: ServerAddress, options: RelayNodeOptions = {}): Promise<RelayNode> {
    const listener = Deno.listen({
      hostname: options.listenHost ?? "0.0.0.0",
      port: options.listenPort ?? 0,
    });
    let conn: ClientConn;
    try {
      ({ conn } = await connectToServer(address, { ...options.connect, signal: options.signal }));
    } catch (error) {
      listener.close();
      throw error;
    }
    const node = new RelayNode(conn, listener, options);
    await node.#sendServer(encodeRelay({
      msg: "join",
      port: listener.addr.port,
      ...(options.announceHost ? { host: options.announceHost } : {}),
    }));
    return node;
  }

  /** This node's id in the overlay (after {@linkcode joined}). */
  get node(): number | undefined {
    return this.#assign?.node;
  }

  /** Node id of the current parent (0: the server). */
  get parent(): number {
    return this.#active.node;
  }

  /**
   * Leaves gracefully: tells the server (which hands the children to this node's parent),
   * keeps forwarding until the children have moved (at most `waitMs`), then closes.
   */
  async leave(waitMs = 3000): Promise<void> {
    if (this.#closed) return;
    await this.#sendServer(encodeRelay({ msg: "leave" }));
    const until = performance.now() + waitMs;
    while (this.#children.size > 0 && performance.now() < until && !this.#closed) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#sendServer(encodeControl(FrameType.BYE, undefined));
    this.close();
  }

  /** Test helper: stops forwarding and heartbeats without closing anything (a hung node). */
  freeze(): void {
    this.#frozen = true;
  }

  /** Closes everything at once, as a crash would look to the children. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    closeQuietly(this.#server);
    closeQuietly(this.#listener);
    for (const s of [this.#active, this.#previous]) if (s) this.#closeSource(s);
    for (const c of this.#children) this.#dropChild(c);
    for (const w of this.#acceptWaiters.splice(0)) w();
  }

  /** Same as {@linkcode close}, then waits for the tasks to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.finished;
  }

  async #sendServer(bytes: Uint8Array): Promise<void> {
    try {
      for (let at = 0; at < bytes.length;) at += await this.#server.write(bytes.subarray(at));
    } catch { /* the read loop sees the end */ }
  }

  #event(event: string, fields: EventFields = {}): void {
    this.#options.onEvent?.(event, { node: this.#assign?.node, ...fields });
  }

  async #readServer(): Promise<void> {
    try {
      for await (
        const frame of readFrames(this.#server, {
          signal: this.#stop.signal,
          maxPayload: STREAM_MAX_PAYLOAD,
          readSize: 64 * 1024,
        })
      ) {
        if (frame.type === FrameType.RELAY) {
          await this.#onAssign(frame);
        } else if (isStreamFrame(frame)) {
          this.stats.bytesFromServer += 32 + frame.payload.length;
          await this.#enqueue(frame, this.#serverSource);
        } else if (frame.type === FrameType.REJECT || frame.type === FrameType.ERROR) {
          const r = frame.type === FrameType.REJECT ? readReject(frame) : undefined;
          const e = r ? undefined : readError(frame);
          this.#event("server_error", { code: r?.code ?? e?.code, text: r?.reason ?? e?.message });
          if (!this.#assign) {
            this.#joinedReject(
              new ServerRefusedError(r?.code ?? e!.code, escapePeerText(r?.reason ?? e!.message)),
            );
          }
        }
      }
    } catch (error) {
      if (!this.#closed) this.#event("server_lost", { error: (error as Error).message });
    }
    if (!this.#closed) this.#event("server_closed");
    this.#joinedReject(
      new ServerConnectionError("The server closed the link before assigning a place"),
    );
  }

  async #onAssign(frame: Frame): Promise<void> {
    let a: Assign;
    try {
      const m = readRelay(frame);
      if (m.msg !== "assign") return;
      a = m;
    } catch (error) {
      this.#event("bad_assign", { error: (error as Error).message });
      return;
    }
    const first = !this.#assign;
    this.#assign = a;
    for (const w of this.#acceptWaiters.splice(0)) w();
    if (first) {
      this.#verifier = await StreamVerifier.create(fromBase64(a.key), a.stream, {
        minIndex: a.manifest,
      });
      this.#event("relay_joined", { parent: a.parent?.node ?? 0 });
      this.#joinedResolve(a);
    }
    const want = a.parent?.node ?? SERVER_NODE;
    if (first && a.parent) this.#active = this.#openRelay(a.parent);
    else if (want !== this.#active.node) this.#switchTo(a.parent, "moved");
  }

  /** Switches parent; the old one stays open until the new one has sent a manifest. */
  #switchTo(peer: RelayPeer | null, reason: Recovery["reason"]): void {
    const old = this.#active;
    const to = peer?.node ?? SERVER_NODE;
    if (to === old.node && !old.closed) return;
    this.#recovering = { reason, from: old.node, to, lostFrames: 0 };
    this.stats.recoveries.push(this.#recovering);
    this.#event("relay_switch", { reason, from: old.node, to });
    if (this.#previous && this.#previous !== old) this.#closeSource(this.#previous);
    if (reason === "moved" && !old.closed) this.#previous = old;
    else {
      this.#closeSource(old);
      this.#previous = undefined;
    }
    this.#active = peer ? this.#openRelay(peer) : this.#serverSource;
    if (!peer) this.#serverSource.lastFrameAt = performance.now();
  }

  #openRelay(peer: RelayPeer): Source {
    const src: Source = {
      node: peer.node,
      closed: false,
      lastFrameAt: performance.now(),
      lastDataAt: performance.now(),
      confirmed: false,
    };
    void (async () => {
      try {
        const conn = await Deno.connect({ hostname: peer.host, port: peer.port });
        src.conn = conn;
        if (src.closed) return conn.close();
        const have = this.#verifier?.currentIndex;
        const hello = encodeRelay({
          msg: "hello",
          token: this.#assign!.token,
          ...(have === undefined ? {} : { have }),
        });
        for (let at = 0; at < hello.length;) at += await conn.write(hello.subarray(at));
        for await (
          const frame of readFrames(conn, { maxPayload: STREAM_MAX_PAYLOAD, readSize: 64 * 1024 })
        ) {
          if (src.closed) break;
          src.lastFrameAt = performance.now();
          if (frame.type === FrameType.HEARTBEAT) continue;
          this.stats.bytesFromRelays += 32 + frame.payload.length;
          if (isStreamFrame(frame)) await this.#enqueue(frame, src);
        }
        if (!src.closed && !this.#closed) this.#failed(src, "silent");
      } catch (error) {
        // A frame that does not even decode (CRC, magic…) from a relay is not trusted either.
        const corrupt = error instanceof Error && error.name === "FrameError";
        if (!src.closed && !this.#closed) this.#failed(src, corrupt ? "forged" : "silent");
      }
      this.#closeSource(src);
    })();
    return src;
  }

  #closeSource(src: Source): void {
    if (src === this.#serverSource) return;
    src.closed = true;
    if (src.conn) closeQuietly(src.conn);
  }

  /** A relay parent failed: report it and go to the backup now. */
  #failed(src: Source, reason: "silent" | "forged"): void {
    if (src.closed || this.#closed) return;
    this.#closeSource(src);
    if (src === this.#previous) {
      this.#previous = undefined;
      return;
    }
    if (src !== this.#active) return;
    this.#event("relay_parent_failed", { parent: src.node, reason });
    void this.#sendServer(encodeRelay({ msg: "report", node: src.node, reason }));
    const backup = this.#assign?.backup ?? null;
    // The backup is the parent's parent; if it is the failed node itself, fall back to the server.
    this.#switchTo(backup && backup.node !== src.node ? backup : null, reason);
  }

  #enqueue(frame: Frame, src: Source): Promise<void> {
    const next = this.#chain.then(() => this.#ingest(frame, src));
    this.#chain = next.catch(() => {});
    return this.#chain;
  }

  async #ingest(frame: Frame, src: Source): Promise<void> {
    const verifier = this.#verifier;
    if (src.closed || !verifier || this.#closed) return;
    const bytes = encodeFrame(frame);
    if (frame.type === FrameType.RELAY_MANIFEST) {
      const v = await verifier.manifest(frame.payload, frame.sequence);
      if (v === "forged") return this.#forged(src);
      if (!src.confirmed) {
        src.confirmed = true;
        if (src === this.#active && this.#previous) {
          this.#closeSource(this.#previous);
          this.#previous = undefined;
        }
      }
      if (v === "ok") {
        this.#previousWindow = this.#window;
        this.#window = [bytes];
        this.#forward(bytes);
      }
      return;
    }
    if (frame.streamId !== this.#assign!.stream) return this.#forged(src);
    const v = verifier.frame(bytes);
    if (v === "forged") return this.#forged(src);
    if (v !== "ok") {
      if (v === "duplicate") this.stats.duplicates++;
      return;
    }
    this.#window.push(bytes);
    this.#forward(bytes);
    this.stats.frames++;
    const now = performance.now();
    src.lastDataAt = now;
    if (frame.type === FrameType.DATA) {
      let lost = 0;
      const last = this.#lastSequence;
      // Signed 32-bit distance: a frame behind the newest fills a gap counted before.
      const ahead = last === undefined ? 1 : (frame.sequence - last) | 0;
      if (ahead > 0) {
        lost = ahead - 1;
        this.#lastSequence = frame.sequence;
      } else if (this.stats.lostFrames > 0) {
        lost = -1;
      }
      this.stats.lostFrames += lost;
      if (this.#recovering && lost >= 0) {
        this.#recovering.lostFrames += lost;
        this.#recovering.waitMs ??= Math.round(now - this.#lastVerifiedAt);
        this.#recovering = undefined;
      }
      this.#lastVerifiedAt = now;
    }
    if (frame.type !== FrameType.DATA) {
      // Every window repeats its song's NOW_PLAYING and STREAM_INFO (forwarded for newcomers):
      // the player is told only when they change.
      const key = frameHashKey(bytes);
      if (this.#songKeys.includes(key)) return;
      this.#songKeys = frame.type === FrameType.NOW_PLAYING ? [key] : [...this.#songKeys, key];
    }
    this.#options.onRadio?.(radioEvent(frame));
  }

  #forged(src: Source): void {
    this.stats.forged++;
    this.#event("relay_forged", { from: src.node });
    if (src !== this.#serverSource) this.#failed(src, "forged");
  }

  #forward(bytes: Uint8Array): void {
    if (this.#frozen) return;
    const out = this.#options.tamper ? this.#options.tamper(bytes) : bytes;
    for (const c of this.#children) this.#send(c, out);
  }

  #send(c: Child, bytes: Uint8Array, force = false): void {
    if (!c.queue.offer(bytes, force)) {
      this.#event("child_too_slow", {});
      this.#dropChild(c);
      return;
    }
    this.stats.bytesToChildren += bytes.length;
  }

  #heartbeat(): void {
    if (this.#frozen) return;
    const beat = encodeControl(FrameType.HEARTBEAT, undefined);
    for (const c of this.#children) if (c.queue.queuedBytes === 0) c.queue.offer(beat);
  }

  #watch(): void {
    if (this.#closed || this.#active === this.#serverSource) return;
    const now = performance.now();
    const a = this.#active;
    if (
      now - a.lastFrameAt > (this.#options.silenceMs ?? 1500) ||
      now - a.lastDataAt > (this.#options.stallMs ?? 3000)
    ) {
      this.#failed(a, "silent");
    }
  }

  async #acceptChildren(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const max = this.#options.maxChildren ?? 64;
        if (this.#children.size + this.#pendingChildren >= max) {
          closeQuietly(conn);
          continue;
        }
        void this.#serveChild(conn);
      }
    } catch { /* listener closed */ }
  }

  async #serveChild(conn: Deno.Conn): Promise<void> {
    this.#pendingChildren++;
    let child: Child | undefined;
    const timer = setTimeout(() => closeQuietly(conn), 2000);
    try {
      const frames = readFrames(conn, { maxPayload: 4096, readSize: 4096 });
      const first = await frames.next();
      if (first.done || first.value.type !== FrameType.RELAY) return;
      const hello = readRelay(first.value);
      if (hello.msg !== "hello" || !(await this.#waitAccept(hello.token, 2000))) return;
      clearTimeout(timer);
      child = {
        conn,
        queue: new SendQueue(conn, {
          maxBytes: this.#options.childQueueBytes ?? 1024 * 1024,
          onError: () => child && this.#dropChild(child),
        }),
      };
      this.#pendingChildren--;
      this.#children.add(child);
      this.stats.children = this.#children.size;
      this.#event("child_joined", { children: this.#children.size });
      // A newcomer gets the current window from its manifest on, so it can verify at once; a
      // child that moves here (it says which manifest it has) also the window before, if it
      // is newer than what it has: a parent that hung for a window costs it nothing.
      const replay = hello.have !== undefined && this.#previousWindow.length > 0 &&
          manifestIndex(this.#previousWindow[0]!) > hello.have
        ? [...this.#previousWindow, ...this.#window]
        : this.#window;
      if (!this.#frozen) { for (const f of replay) this.#send(child, f, true); }
      for await (const f of frames) if (f.type === FrameType.BYE) break;
    } catch {
      /* bad hello or connection gone */
    } finally {
      clearTimeout(timer);
      if (child) this.#dropChild(child);
      else {
        this.#pendingChildren--;
        closeQuietly(conn);
      }
    }
  }

  /** Whether `token` is (or within `ms` becomes) one this node may serve. */
  async #waitAccept(token: string, ms: number): Promise<boolean> {
    const until = performance.now() + ms;
    while (!this.#closed) {
      if (this.#assign?.accept.includes(token)) return true;
      const left = until - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#acceptWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return false;
  }

  #dropChild(c: Child): void {
    if (!this.#children.delete(c)) {
      c.queue.close();
      closeQuietly(c.conn);
      return;
    }
    c.queue.close();
    closeQuietly(c.conn);
    this.stats.children = this.#children.size;
    this.#event("child_left", { children: this.#children.size });
  }
}

/** The index of a RELAY_MANIFEST frame (its header's sequence field). */
function manifestIndex(frame: Uint8Array): number {
  return new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(12);
}

function frameHashKey(bytes: Uint8Array): string {
  return frameHash(bytes);
}

function isStreamFrame(f: Frame): boolean {
  return f.type === FrameType.RELAY_MANIFEST || (f.streamId !== 0 &&
    (f.type === FrameType.DATA || f.type === FrameType.NOW_PLAYING ||
      f.type === FrameType.STREAM_INFO));
}

function radioEvent(frame: Frame): RadioEvent {
  switch (frame.type) {
    case FrameType.NOW_PLAYING:
      return { type: "now_playing", nowPlaying: readNowPlaying(frame) };
    case FrameType.STREAM_INFO:
      return { type: "stream_info", info: readStreamInfo(frame) };
    default:
      return {
        type: "data",
        payload: frame.payload,
        songStart: (frame.flags & 1) !== 0,
        timestampUs: frame.timestamp,
        sequence: frame.sequence,
      };
  }
}
