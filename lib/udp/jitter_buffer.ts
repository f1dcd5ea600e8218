/**
 * The receiver's jitter buffer: holds packets long enough to put reordered ones back in
 * order and to absorb uneven arrival, then releases them in sequence. A missing packet is
 * waited for until the packet after it has waited `bufferMs`; then it is declared lost and
 * playout moves on (a gap the playout conceals). Memory is bounded: past `maxPackets` the
 * oldest packet is dropped — a slow output never makes the buffer grow without limit.
 *
 * @module
 */

/** A packet waiting for playout. */
export interface BufferedPacket {
  /** Extended (monotonic) sequence number. */
  seq: number;
  /** The frame's own 32-bit sequence number (STREAM_INFO `sequence` refers to these). */
  seq32?: number;
  timestampUs: number;
  flags: number;
  /** Owned copy of the payload. */
  payload: Uint8Array;
  /** performance.now() at arrival. */
  arrivalMs: number;
}

/** What playout does next. */
export type PlayoutItem =
  | { kind: "packet"; packet: BufferedPacket }
  /** Sequences `fromSeq`..`toSeq - 1` are lost; playout resumes at the packet `toSeq`. */
  | { kind: "gap"; fromSeq: number; toSeq: number; resumeTimestampUs: number };

/** Options for {@linkcode JitterBuffer}. */
export interface JitterBufferOptions {
  /** How long to wait for a missing packet, and how much to buffer before starting (ms). */
  bufferMs: number;
  /** Most packets held. @default {4096} */
  maxPackets?: number;
}

/** Reorders packets and decides when a missing one is lost. */
export class JitterBuffer {
  #bufferMs: number;
  readonly #maxPackets: number;
  /** Sorted by seq. */
  #packets: BufferedPacket[] = [];
  #next: number | undefined;
  #started = false;
  #dry = false;
  /** Media clock anchor: wall time and media time of the first packet played. */
  #clock: { wallMs: number; mediaUs: number } | undefined;
  /** Timestamp of the last packet released, and the gap to the one before (packet spacing). */
  #lastUs: number | undefined;
  #spacingUs = 0;
  /** Packets dropped because the buffer was full. */
  overflowed = 0;
  /** Times playout found the buffer empty mid-stream. */
  underruns = 0;
  /**
   * How long the packet after a hole waits for the missing ones, from the current `bufferMs`
   * (unset: `bufferMs`). A live stream holds its delay in the device's queue instead, which
   * a longer wait would run dry (lib/live/playout_control.ts liveGapWaitMs).
   */
  gapWaitMs: ((bufferMs: number) => number) | undefined;

  /** Creates an empty buffer. */
  constructor(options: JitterBufferOptions) {
    this.#bufferMs = options.bufferMs;
    this.#maxPackets = options.maxPackets ?? 4096;
  }

  /** How long a missing packet is waited for (ms); may change while playing (`--buffer auto`). */
  get bufferMs(): number {
    return this.#bufferMs;
  }

  set bufferMs(ms: number) {
    this.#bufferMs = Math.max(0, ms);
  }

  /** Packets held. */
  get size(): number {
    return this.#packets.length;
  }

  /** Whether playout has started (prefill done). */
  get started(): boolean {
    return this.#started;
  }

  /**
   * Adds a packet (not a duplicate: the caller filters those). Returns `late` if playout has
   * already moved past its sequence number (it is not kept).
   */
  insert(packet: BufferedPacket): "buffered" | "late" {
    if (this.#next !== undefined && packet.seq < this.#next) return "late";
    const list = this.#packets;
    let i = list.length;
    while (i > 0 && list[i - 1]!.seq > packet.seq) i--;
    list.splice(i, 0, packet);
    if (list.length > this.#maxPackets) {
      const dropped = list.shift()!;
      this.overflowed++;
      if (this.#next !== undefined && this.#next <= dropped.seq) this.#next = dropped.seq + 1;
    }
    return "buffered";
  }

  /**
   * The next playout step at time `nowMs`, or undefined to wait. With `ended` (END received
   * or the stream timed out) everything left is released without waiting.
   */
  next(nowMs: number, ended = false): PlayoutItem | undefined {
    const list = this.#packets;
    if (!this.#started) {
      const first = list[0];
      if (!first) return undefined;
      const last = list[list.length - 1]!;
      const spanMs = (last.timestampUs - first.timestampUs) / 1000;
      const waitedMs = nowMs - Math.min(...list.map((p) => p.arrivalMs));
      if (!ended && spanMs < this.#bufferMs && waitedMs < this.#bufferMs) return undefined;
      this.#started = true;
      this.#next ??= first.seq;
    }
    const head = list[0];
    if (!head) {
      // Empty is normal between packets of a real-time stream; it is an underrun only once
      // the next packet is overdue on the media clock (the output would now have a hole).
      if (!ended && !this.#dry && this.#overdue(nowMs)) {
        this.#dry = true;
        this.underruns++;
      }
      return undefined;
    }
    this.#dry = false;
    if (head.seq === this.#next || this.#next === undefined || head.seq < this.#next) {
      list.shift();
      this.#next = head.seq + 1;
      this.#released(head, nowMs);
      return { kind: "packet", packet: head };
    }
    // head.seq > next: packets next..head.seq-1 are missing. Wait for them until the head
    // itself has waited bufferMs (it would have been played by then).
    if (ended || nowMs - head.arrivalMs >= (this.gapWaitMs?.(this.#bufferMs) ?? this.#bufferMs)) {
      const gap: PlayoutItem = {
        kind: "gap",
        fromSeq: this.#next,
        toSeq: head.seq,
        resumeTimestampUs: head.timestampUs,
      };
      this.#next = head.seq;
      return gap;
    }
    return undefined;
  }

  #released(packet: BufferedPacket, nowMs: number): void {
    this.#clock ??= { wallMs: nowMs, mediaUs: packet.timestampUs };
    if (this.#lastUs !== undefined && packet.timestampUs > this.#lastUs) {
      this.#spacingUs = packet.timestampUs - this.#lastUs;
    }
    this.#lastUs = packet.timestampUs;
  }

  #overdue(nowMs: number): boolean {
    if (!this.#clock || this.#lastUs === undefined || this.#spacingUs === 0) return false;
    const nextDueMs = this.#clock.wallMs +
      (this.#lastUs + this.#spacingUs - this.#clock.mediaUs) / 1000;
    return nowMs > nextDueMs;
  }

  /**
   * Forgets the media clock (the stream's timestamps jumped and were re-synchronised): the next
   * packet released anchors it again, so no underrun is judged across the jump.
   */
  resyncClock(): void {
    this.#clock = undefined;
    this.#lastUs = undefined;
    this.#spacingUs = 0;
  }

  /** Milliseconds until {@linkcode next} may return something new without a new packet. */
  waitHintMs(nowMs: number): number {
    const head = this.#packets[0];
    if (!head) return this.#bufferMs;
    const waitMs = this.#started
      ? this.gapWaitMs?.(this.#bufferMs) ?? this.#bufferMs
      : this.#bufferMs;
    return Math.max(1, waitMs - (nowMs - head.arrivalMs));
  }
}
