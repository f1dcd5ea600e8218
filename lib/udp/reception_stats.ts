/**
 * What a receiver observed on a UDP stream: received, lost, duplicated, reordered, late,
 * interarrival jitter (RFC 3550 §6.4.1 / A.8), underruns, bytes and duration. Sequence
 * numbers are 32-bit and wrap; they are extended to a monotonic count (RFC 3550 A.1 idea) so
 * arithmetic on them stays simple.
 *
 * @module
 */

import type { ImpairmentCounts } from "./impairment.ts";

/** The numbers printed at the end of a stream (`--stats-json` prints exactly this). */
export interface ReceptionReport {
  /** DATA packets the sender sent (from END), or the span of sequence numbers seen. */
  expected: number;
  /** Distinct DATA packets received (late ones included). */
  received: number;
  /** expected − received (never negative). */
  lost: number;
  /** Extra copies of packets already received. */
  duplicated: number;
  /** Packets that arrived after a higher sequence number. */
  reordered: number;
  /** Packets that arrived after their playout point had passed (not played). */
  late: number;
  /** Packets passed to the decoder. */
  played: number;
  /** Gaps filled (silence for PCM, skipped for MP3). */
  concealed: number;
  /** Times playout ran dry while the stream was still going. */
  underruns: number;
  /** Packets dropped because the jitter buffer was full (output too slow). */
  overflowed: number;
  /** RFC 3550 interarrival jitter in milliseconds. */
  jitterMs: number;
  /** DATA payload bytes received (duplicates excluded). */
  bytes: number;
  /** Seconds from the first to the last DATA packet. */
  durationS: number;
  /** Datagrams that were not valid frames, or not for this stream. */
  malformed: number;
  /**
   * DATA frames dropped because their sequence number or timestamp was implausibly far from
   * the stream's (forged, or from before a re-synchronisation).
   */
  implausible: number;
  /** What `--sim-*` injected on this side, if enabled. */
  injected?: ImpairmentCounts;
  /** How the stream ended. */
  ending: "end" | "timeout" | "interrupted" | "error";
}

/** Counts packets as they arrive. */
export class ReceptionStats {
  #highest: number | undefined;
  #lastSeq32 = 0;
  #first: number | undefined;
  #seen = new Set<number>();
  #transit: number | undefined;
  #jitter = 0;
  #firstArrival = 0;
  #lastArrival = 0;
  /** Total the sender says it sent (END), when known. */
  sentBySender: number | undefined;
  /** Sequence number the stream starts from, when known (0 for on-demand). */
  base: number | undefined;
  received = 0;
  duplicated = 0;
  reordered = 0;
  late = 0;
  played = 0;
  concealed = 0;
  underruns = 0;
  overflowed = 0;
  bytes = 0;
  malformed = 0;
  implausible = 0;

  /**
   * Records a DATA packet. Returns its extended sequence number, or undefined for a duplicate.
   *
   * @param seq32 the frame's 32-bit sequence number
   * @param timestampUs its media timestamp
   * @param arrivalMs when it arrived (performance.now())
   * @param bytes its payload length
   */
  onData(seq32: number, timestampUs: number, arrivalMs: number, bytes: number): number | undefined {
    const ext = this.#extend(seq32);
    if (this.#seen.has(ext)) {
      this.duplicated++;
      return undefined;
    }
    this.#seen.add(ext);
    if (this.#seen.size > 70_000) this.#prune();
    this.received++;
    this.bytes += bytes;
    if (this.#first === undefined || ext < this.#first) this.#first = ext;
    if (this.#highest !== undefined && ext < this.#highest) this.reordered++;
    else this.#highest = ext;
    if (this.received === 1) this.#firstArrival = arrivalMs;
    this.#lastArrival = Math.max(this.#lastArrival, arrivalMs);
    // RFC 3550: D = (Rj − Ri) − (Sj − Si); J += (|D| − J) / 16, in arrival order.
    const transit = arrivalMs - timestampUs / 1000;
    if (this.#transit !== undefined) {
      this.#jitter += (Math.abs(transit - this.#transit) - this.#jitter) / 16;
    }
    this.#transit = transit;
    return ext;
  }

  /**
   * Re-synchronises the sequence extension after the stream jumped (see SequenceGuard):
   * 32-bit sequence `seq32` becomes the one right after the highest so far, so the jump is
   * neither counted as loss nor makes later packets look late.
   */
  rebase(seq32: number): void {
    if (this.#highest === undefined) return;
    this.#lastSeq32 = (seq32 - 1) >>> 0;
    this.#transit = undefined;
  }

  /** Whether extended sequence `ext` was received. */
  wasReceived(ext: number): boolean {
    return this.#seen.has(ext);
  }

  /** Extends a 32-bit sequence number relative to the highest seen so far. */
  #extend(seq32: number): number {
    if (this.#highest === undefined) {
      this.#lastSeq32 = seq32;
      return seq32;
    }
    // Signed 32-bit distance from the highest sequence seen: handles wrap-around.
    const delta = (seq32 - this.#lastSeq32) | 0;
    const ext = this.#highest + delta;
    if (delta > 0) this.#lastSeq32 = seq32;
    return ext;
  }

  #prune(): void {
    const floor = (this.#highest ?? 0) - 65_536;
    for (const s of this.#seen) if (s < floor) this.#seen.delete(s);
  }

  /** The report, with `expected` from END when known. */
  report(ending: ReceptionReport["ending"], injected?: ImpairmentCounts): ReceptionReport {
    const base = this.base ?? this.#first ?? 0;
    const span = this.#highest === undefined ? 0 : this.#highest - base + 1;
    const expected = this.sentBySender ?? span;
    const r: ReceptionReport = {
      expected,
      received: this.received,
      lost: Math.max(0, expected - this.received),
      duplicated: this.duplicated,
      reordered: this.reordered,
      late: this.late,
      played: this.played,
      concealed: this.concealed,
      underruns: this.underruns,
      overflowed: this.overflowed,
      jitterMs: Math.round(this.#jitter * 1000) / 1000,
      bytes: this.bytes,
      durationS: Math.round(Math.max(0, this.#lastArrival - this.#firstArrival)) / 1000,
      malformed: this.malformed,
      implausible: this.implausible,
      ending,
    };
    if (injected) r.injected = injected;
    return r;
  }
}

/** Renders a report as the human table printed on stderr. */
export function formatReport(r: ReceptionReport): string {
  const pct = (n: number) => r.expected > 0 ? ` (${(100 * n / r.expected).toFixed(2)} %)` : "";
  const rows: [string, string, string][] = [
    ["packets expected", String(r.expected), ""],
    ["received", String(r.received), ""],
    ["lost", `${r.lost}${pct(r.lost)}`, r.injected ? String(r.injected.dropped) : ""],
    ["duplicated", String(r.duplicated), r.injected ? String(r.injected.duplicated) : ""],
    ["reordered", String(r.reordered), r.injected ? String(r.injected.reordered) : ""],
    ["late (not played)", String(r.late), ""],
    ["played", String(r.played), ""],
    ["concealed gaps", String(r.concealed), ""],
    ["buffer underruns", String(r.underruns), ""],
    ["buffer overflows", String(r.overflowed), ""],
    ["jitter (RFC 3550)", `${r.jitterMs.toFixed(3)} ms`, ""],
    ["bytes", String(r.bytes), ""],
    ["duration", `${r.durationS.toFixed(3)} s`, ""],
    ["malformed datagrams", String(r.malformed), ""],
    ["implausible (dropped)", String(r.implausible), ""],
    ["ended by", r.ending, ""],
  ];
  const head: [string, string, string] = ["", "observed", r.injected ? "injected" : ""];
  const all = [head, ...rows];
  const w0 = Math.max(...all.map((x) => x[0].length));
  const w1 = Math.max(...all.map((x) => x[1].length));
  return all.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`.trimEnd()).join("\n");
}
