/**
 * The server side of the relay overlay (tls-server `--relay-fanout K`, docs/PROTOCOL.md §9):
 * places relaying listeners with {@linkcode Overlay}, tells each its parent and backup
 * (`assign`), signs the station's frames in windows ({@linkcode ManifestSigner}) and streams
 * them only to its direct children, through each session's bounded send queue.
 *
 * @module
 */

import { FrameType } from "../wire/frame.ts";
import { encodeControl, MessageError } from "../wire/messages.ts";
import type { Frame } from "../wire/frame.ts";
import type { Station, StationEvent } from "../media/station.ts";
import type { EventFields } from "../cli/event_log.ts";
import { encodeStationEvent, type Session } from "../tls/session.ts";
import { Overlay, SERVER } from "./overlay.ts";
import { ManifestSigner } from "./signing.ts";
import { type Assign, encodeRelay, readRelay, type RelayPeer, toBase64 } from "./messages.ts";

/** Options for {@linkcode RelayHub}. */
export interface RelayHubOptions {
  /** The running station. */
  station: Station;
  /** Its stream id. */
  stationId: number;
  /** Children per node (1: chain). */
  fanout: number;
  /** Station media time per signed window, in ms. @default {1000} */
  windowMs?: number;
  /** Records an event. */
  log: (event: string, fields: EventFields) => void;
  /** Told the overlay (one line a node) whenever it changes. */
  onOverlay?: (lines: string[]) => void;
}

interface Member {
  session: Session;
  node: number;
  host: string;
  port: number;
  token: string;
  lastAssign: string;
  direct: boolean;
}

/** Counters (bench/relay.ts reads them). */
export interface RelayHubStats {
  /** Manifests signed. */
  manifests: number;
  /** Bytes of signed stream (manifests + frames) queued to direct children. */
  streamBytes: number;
}

/** How many windows older than the newest a joining node still accepts. */
const MANIFEST_SLACK = 3;

/** The relay overlay of one tls-server. */
export class RelayHub {
  /** Who relays to whom. */
  readonly overlay: Overlay;
  /** Counters. */
  readonly stats: RelayHubStats = { manifests: 0, streamBytes: 0 };
  readonly #options: RelayHubOptions;
  readonly #windowUs: number;
  readonly #ready: Promise<ManifestSigner>;
  #signer: ManifestSigner | undefined;
  readonly #members = new Map<number, Member>();
  readonly #bySession = new Map<Session, Member>();
  #pending: Uint8Array[] = [];
  #pendingStartUs: number | undefined;
  #songFrames: Uint8Array[] = [];
  #windowSong: Uint8Array[] = [];
  #lastBatch: Uint8Array[] = [];
  #prevBatch: Uint8Array[] = [];
  #lastIndex = 0;
  #chain: Promise<void> = Promise.resolve();
  #lastOverlay = "";

  /** Subscribes to the station; the key pair is generated in the background. */
  constructor(options: RelayHubOptions) {
    this.#options = options;
    this.overlay = new Overlay(options.fanout);
    this.#windowUs = (options.windowMs ?? 1000) * 1000;
    this.#ready = ManifestSigner.create(options.stationId).then((s) => (this.#signer = s));
    options.station.subscribe((event) => this.#onStation(event));
  }

  /** Resolves once the key pair exists. */
  async ready(): Promise<void> {
    await this.#ready;
  }

  /** The raw Ed25519 public key (undefined until {@linkcode ready}). */
  get publicKey(): Uint8Array | undefined {
    return this.#signer?.publicKey;
  }

  /** A RELAY frame from a session (§9.1). */
  onFrame(session: Session, frame: Frame): void {
    void this.#ready.then(() => this.#handle(session, frame)).catch((error) =>
      this.#options.log("relay_error", { error: (error as Error).message })
    );
  }

  /** The session closed: a member still in the overlay counts as crashed. */
  drop(session: Session): void {
    const m = this.#bySession.get(session);
    if (!m) return;
    this.#remove(m);
    if (this.overlay.has(m.node)) {
      this.overlay.crash(m.node);
      this.#log(m, "relay_lost", {});
      this.#sync();
    }
  }

  #handle(session: Session, frame: Frame): void {
    if (session.state !== "open") return;
    let msg;
    try {
      msg = readRelay(frame);
    } catch (error) {
      if (!(error instanceof MessageError)) throw error;
      this.#error(session, error.message);
      return;
    }
    const member = this.#bySession.get(session);
    switch (msg.msg) {
      case "join": {
        if (member || session.relayMember) {
          this.#error(session, "already in the relay overlay");
          return;
        }
        const host = msg.host ?? hostOf(session.remote);
        const m: Member = {
          session,
          node: session.id,
          host,
          port: msg.port,
          token: randomToken(),
          lastAssign: "",
          direct: false,
        };
        session.relayMember = true;
        this.#members.set(m.node, m);
        this.#bySession.set(session, m);
        this.overlay.join(m.node, `${host.includes(":") ? `[${host}]` : host}:${msg.port}`);
        this.#log(m, "relay_join", { port: msg.port, relayHost: host });
        this.#sync();
        return;
      }
      case "leave":
        if (!member) return this.#error(session, "not in the relay overlay");
        this.#remove(member);
        this.overlay.leave(member.node);
        this.#log(member, "relay_leave", {});
        this.#sync();
        return;
      case "report": {
        if (!member) return this.#error(session, "not in the relay overlay");
        // Only a node's own parent can be reported by it, so a hostile listener can evict at
        // most the one node that serves it.
        const target = this.#members.get(msg.node);
        if (this.overlay.placement(member.node)?.parent !== msg.node || !target) return;
        this.#log(member, "relay_report", { node: msg.node, reason: msg.reason });
        this.#remove(target);
        this.overlay.crash(target.node);
        target.session.close("relay_evicted", { reason: msg.reason, by: member.node });
        this.#sync();
        return;
      }
      default:
        this.#error(session, `a listener does not send "${msg.msg}"`);
    }
  }

  #remove(m: Member): void {
    this.#members.delete(m.node);
    this.#bySession.delete(m.session);
  }

  /** Sends every member whose place changed its new `assign`; starts/stops direct streams. */
  #sync(): void {
    const signer = this.#signer!;
    const peerOf = (node: number): RelayPeer | null => {
      const p = node === SERVER ? undefined : this.#members.get(node);
      return p ? { node: p.node, host: p.host, port: p.port } : null;
    };
    for (const m of this.#members.values()) {
      const place = this.overlay.placement(m.node);
      if (!place) continue;
      const accept = [...this.overlay.children(m.node), ...this.overlay.standby(m.node)]
        .map((id) => this.#members.get(id)?.token).filter((t): t is string => t !== undefined);
      const assign: Assign = {
        msg: "assign",
        node: m.node,
        stream: this.#options.stationId,
        key: toBase64(signer.publicKey),
        manifest: Math.max(0, this.#lastIndex - MANIFEST_SLACK),
        token: m.token,
        parent: peerOf(place.parent),
        backup: peerOf(place.backup),
        accept,
      };
      // The floor moves on with every window; only a changed place is news.
      const key = JSON.stringify({ ...assign, manifest: 0 });
      // A node moved here (not a newcomer) also gets the window before the last, so a parent
      // that hung for a window before it was reported costs it nothing (§9.4).
      const moved = m.lastAssign !== "";
      if (key !== m.lastAssign) {
        m.lastAssign = key;
        m.session.queue.offer(encodeRelay(assign), true);
      }
      const direct = place.parent === SERVER;
      if (direct && !m.direct) {
        this.#offer(m, moved ? [...this.#prevBatch, ...this.#lastBatch] : this.#lastBatch, true);
      }
      m.direct = direct;
    }
    const lines = this.overlay.format();
    const text = lines.join("\n");
    if (text !== this.#lastOverlay) {
      this.#lastOverlay = text;
      this.#options.log("relay_overlay", { overlay: text });
      this.#options.onOverlay?.(lines);
    }
  }

  #onStation(event: StationEvent): void {
    const frames = encodeStationEvent(event, this.#options.stationId);
    if (event.type === "song") {
      this.#songFrames = frames;
    } else {
      const ts = event.packet.timestampUs;
      if (this.#pendingStartUs !== undefined && ts - this.#pendingStartUs >= this.#windowUs) {
        this.#flush();
      }
      this.#pendingStartUs ??= ts;
    }
    if (this.#pending.length === 0) this.#windowSong = this.#songFrames;
    this.#pending.push(...frames);
  }

  #flush(): void {
    // Every window starts with its song's NOW_PLAYING and STREAM_INFO, so a node that joins
    // at any window knows what it plays.
    const song = this.#pending[0] === this.#windowSong[0] ? [] : this.#windowSong;
    const frames = [...song, ...this.#pending];
    this.#pending = [];
    this.#pendingStartUs = undefined;
    this.#chain = this.#chain.then(async () => {
      const signer = await this.#ready;
      for (let at = 0; at < frames.length; at += 1024) {
        const part = frames.slice(at, at + 1024);
        this.#lastIndex = signer.nextIndex;
        const batch = [await signer.sign(part), ...part];
        this.stats.manifests++;
        this.#prevBatch = this.#lastBatch;
        this.#lastBatch = batch;
        for (const m of this.#members.values()) if (m.direct) this.#offer(m, batch);
      }
    }).catch((error) => this.#options.log("relay_error", { error: (error as Error).message }));
  }

  #offer(m: Member, frames: Uint8Array[], force = false): void {
    for (const f of frames) {
      if (!m.session.queue.offer(f, force)) {
        void m.session.closeWithError(
          "too_slow",
          "You could not keep up with the radio; disconnected",
        );
        return;
      }
      this.stats.streamBytes += f.length;
    }
  }

  #error(session: Session, message: string): void {
    session.queue.offer(encodeControl(FrameType.ERROR, { code: "bad_request", message }));
  }

  #log(m: Member, event: string, fields: EventFields): void {
    this.#options.log(event, { session: m.session.id, remote: m.session.remote, ...fields });
  }
}

function hostOf(remote: string): string {
  const at = remote.lastIndexOf(":");
  return at < 0 ? remote : remote.slice(0, at);
}

function randomToken(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}
