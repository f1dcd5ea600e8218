/**
 * What a receiver observed on a UDP stream: received, lost, duplicated, reordered, late,
 * interarrival jitter (RFC 3550 §6.4.1 / A.8), underruns (jitter buffer and device), bytes and
 * duration. Sequence
 * numbers are 32-bit and wrap; they are extended to a monotonic count (RFC 3550 A.1 idea) so
 * arithmetic on them stays simple.
 *
 * @module
 */

import type { ImpairmentCounts } from "./impairment.ts";
import type { LiveLatencyReport } from "../live/latency.ts";
import type { SessionTimeline } from "../report/timeline.ts";

/**
 * How a stream ended: `end` (END received, everything played), `seconds` (udp-client
 * `--seconds` elapsed), `timeout` (nothing arrived for `--timeout`), `interrupted` (Ctrl+C),
 * `server_bye` (the server said BYE, e.g. because it stops), `error` (the server sent ERROR).
 */
export type Ending = "end" | "seconds" | "timeout" | "interrupted" | "server_bye" | "error";

/** The numbers gathered at the end of a stream (`--stats-json` prints {@link statsJson}). */
export interface ReceptionReport {
  /** The song that played last (its STREAM_INFO title), if any. */
  song?: string;
  /**
   * DATA packets the sender sent (from END), else those STREAM_INFO announced (`packets`, so
   * a stream cut short counts what never came as lost), else the span of sequence numbers seen.
   */
  expected: number;
  /** Distinct DATA packets received (late ones included). */
  received: number;
  /** expected − received (never negative). */
  lost: number;
  /** lost as a percentage of expected (0 when nothing was expected), two decimals. */
  lossPct: number;
  /** Extra copies of packets already received. */
  duplicated: number;
  /** Packets that arrived after a higher sequence number. */
  reordered: number;
  /** Packets that arrived after their playout point had passed (not played). */
  late: number;
  /** Packets passed to the decoder. */
  played: number;
  /**
   * Received packets neither played, late nor overflowed: still in the jitter buffer when the
   * stream stopped (`--seconds`, Ctrl+C, BYE), or before any STREAM_INFO said how to play them.
   */
  stillBuffered: number;
  /** Gaps filled (silence for PCM, skipped for MP3). */
  concealed: number;
  /** Times playout ran dry while the stream was still going (the jitter buffer was empty). */
  underruns: number;
  /**
   * Times the audio device found its ring buffer short while playing (audible gaps the jitter
   * buffer did not see: the output fell behind); 0 for a WAV file or stdout.
   */
  deviceUnderruns: number;
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
  ending: Ending;
  /** The reason the server gave in its BYE or ERROR, when it gave one. */
  serverReason?: string;
  /** A live capture (mic-broadcast): latency capture → output and drift (lib/live/latency.ts). */
  live?: LiveLatencyReport;
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
  /** DATA packets STREAM_INFO announced (`packets`, on-demand), when known. */
  announced: number | undefined;
  /** Sequence number the stream starts from, when known (0 for on-demand). */
  base: number | undefined;
  /** Title of the song playing (last STREAM_INFO played from). */
  song: string | undefined;
  received = 0;
  duplicated = 0;
  reordered = 0;
  late = 0;
  played = 0;
  concealed = 0;
  underruns = 0;
  /** Underruns the output device counted (set at the end, see {@linkcode ReceptionReport}). */
  deviceUnderruns = 0;
  overflowed = 0;
  bytes = 0;
  malformed = 0;
  implausible = 0;
  /** When set, every DATA arrival is recorded there too (`--report`). */
  timeline: SessionTimeline | undefined;

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
      this.timeline?.arrival(ext, timestampUs, arrivalMs, "duplicate");
      return undefined;
    }
    this.#seen.add(ext);
    if (this.#seen.size > 70_000) this.#prune();
    this.received++;
    this.bytes += bytes;
    if (this.#first === undefined || ext < this.#first) this.#first = ext;
    const reordered = this.#highest !== undefined && ext < this.#highest;
    if (reordered) this.reordered++;
    else this.#highest = ext;
    this.timeline?.arrival(ext, timestampUs, arrivalMs, reordered ? "reordered" : "ok");
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

  /** Packets missing so far: the span from the first to the highest sequence, minus arrivals. */
  get lostSoFar(): number {
    const base = this.base ?? this.#first ?? 0;
    const span = this.#highest === undefined ? 0 : this.#highest - base + 1;
    return Math.max(0, span - this.received);
  }

  /** The report, with `expected` from END when known. */
  report(
    ending: Ending,
    injected?: ImpairmentCounts,
    serverReason?: string,
  ): ReceptionReport {
    const base = this.base ?? this.#first ?? 0;
    const span = this.#highest === undefined ? 0 : this.#highest - base + 1;
    // STREAM_INFO's count only when it is consistent with what arrived (never below it), and
    // only when the stream was meant to end: what a listener stopped early (--seconds, Ctrl+C)
    // never asked for is not lost.
    const stoppedEarly = ending === "seconds" || ending === "interrupted";
    const announced = this.announced !== undefined && this.announced >= span && !stoppedEarly
      ? this.announced
      : undefined;
    const expected = this.sentBySender ?? announced ?? span;
    const lost = Math.max(0, expected - this.received);
    const r: ReceptionReport = {
      expected,
      received: this.received,
      lost,
      lossPct: expected > 0 ? Math.round(10_000 * lost / expected) / 100 : 0,
      duplicated: this.duplicated,
      reordered: this.reordered,
      late: this.late,
      played: this.played,
      stillBuffered: Math.max(0, this.received - this.played - this.late - this.overflowed),
      concealed: this.concealed,
      underruns: this.underruns,
      deviceUnderruns: this.deviceUnderruns,
      overflowed: this.overflowed,
      jitterMs: Math.round(this.#jitter * 1000) / 1000,
      bytes: this.bytes,
      durationS: Math.round(Math.max(0, this.#lastArrival - this.#firstArrival)) / 1000,
      malformed: this.malformed,
      implausible: this.implausible,
      ending,
    };
    if (injected) r.injected = injected;
    if (this.song !== undefined) r.song = this.song;
    if (serverReason !== undefined) r.serverReason = serverReason;
    return r;
  }
}

/**
 * The report's rows, in table order: `label` is both the table's row label and the key of
 * {@link statsJson}, so a number read in one is found under the same name in the other.
 */
function rows(r: ReceptionReport): {
  label: string;
  text: string;
  json: string | number;
  injected?: number;
}[] {
  const inj = r.injected;
  const ended = r.serverReason === undefined ? r.ending : `${r.ending} (${r.serverReason})`;
  return [
    { label: "song", text: r.song ?? "", json: r.song ?? "" },
    { label: "expected", text: String(r.expected), json: r.expected },
    { label: "received", text: String(r.received), json: r.received },
    {
      label: "lost",
      text: String(r.lost),
      json: r.lost,
      ...(inj ? { injected: inj.dropped } : {}),
    },
    { label: "loss_pct", text: `${r.lossPct.toFixed(2)} %`, json: r.lossPct },
    {
      label: "duplicated",
      text: String(r.duplicated),
      json: r.duplicated,
      ...(inj ? { injected: inj.duplicated } : {}),
    },
    {
      label: "reordered",
      text: String(r.reordered),
      json: r.reordered,
      ...(inj ? { injected: inj.reordered } : {}),
    },
    { label: "late", text: String(r.late), json: r.late },
    { label: "played", text: String(r.played), json: r.played },
    { label: "still_buffered", text: String(r.stillBuffered), json: r.stillBuffered },
    { label: "concealed", text: String(r.concealed), json: r.concealed },
    { label: "underruns", text: String(r.underruns), json: r.underruns },
    { label: "device_underruns", text: String(r.deviceUnderruns), json: r.deviceUnderruns },
    { label: "overflowed", text: String(r.overflowed), json: r.overflowed },
    { label: "jitter_ms", text: r.jitterMs.toFixed(3), json: r.jitterMs },
    { label: "bytes", text: String(r.bytes), json: r.bytes },
    { label: "duration_s", text: r.durationS.toFixed(3), json: r.durationS },
    { label: "malformed", text: String(r.malformed), json: r.malformed },
    { label: "implausible", text: String(r.implausible), json: r.implausible },
    ...liveRows(r.live),
    { label: "ended_by", text: ended, json: ended },
  ];
}

/** The live rows: latency capture → output hand-off (ms) and drift, when live. */
function liveRows(
  live: LiveLatencyReport | undefined,
): { label: string; text: string; json: number }[] {
  if (!live) return [];
  const ms = (label: string, v: number) => ({ label, text: v.toFixed(2), json: v });
  return [
    { label: "live_packets", text: String(live.packets), json: live.packets },
    ...(live.bufferMs === undefined ? [] : [
      { label: "live_buffer_ms", text: String(live.bufferMs), json: live.bufferMs },
    ]),
    ms("latency_median_ms", live.medianMs),
    ms("latency_p95_ms", live.p95Ms),
    ms("latency_p99_ms", live.p99Ms),
    ms("latency_max_ms", live.maxMs),
    ...(live.device
      ? [
        ms("latency_device_median_ms", live.device.medianMs),
        ms("latency_device_p95_ms", live.device.p95Ms),
        ms("latency_device_p99_ms", live.device.p99Ms),
      ]
      : []),
    { label: "drift_ppm", text: live.driftPpm.toFixed(1), json: live.driftPpm },
    ...(live.framesDropped === undefined ? [] : [
      { label: "drift_dropped", text: String(live.framesDropped), json: live.framesDropped },
      { label: "drift_inserted", text: String(live.framesInserted), json: live.framesInserted! },
    ]),
    ...(live.framesSkipped === undefined ? [] : [
      { label: "drift_skipped", text: String(live.framesSkipped), json: live.framesSkipped },
    ]),
    ...(live.levelMs === undefined ? [] : [ms("drift_level_ms", live.levelMs)]),
    ...(live.targetMs === undefined ? [] : [ms("drift_target_ms", live.targetMs)]),
    ...(live.devicePeriodMs === undefined ? [] : [
      { label: "device_period_ms", text: String(live.devicePeriodMs), json: live.devicePeriodMs },
    ]),
  ];
}

/**
 * The `--stats-json` object: one key per table row (same names as {@link formatReport}'s
 * labels), plus `injected` (the table's "injected" column) when `--sim-*` was on.
 */
export function statsJson(r: ReceptionReport): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const row of rows(r)) o[row.label] = row.json;
  if (r.injected) o.injected = { ...r.injected };
  return o;
}

/**
 * Renders a report as the human table printed on stderr: label, observed value and, with
 * `--sim-*`, what was injected. Text rows (song, ended_by) are left-aligned after the numbers.
 */
export function formatReport(r: ReceptionReport): string {
  const all = rows(r);
  const numeric = all.filter((x) => typeof x.json === "number");
  const head = { label: "", text: "observed", injected: r.injected ? "injected" : "" };
  const w0 = Math.max(...all.map((x) => x.label.length));
  const w1 = Math.max(head.text.length, ...numeric.map((x) => x.text.length));
  const line = (a: string, b: string, c: string) => `  ${a.padEnd(w0)}  ${b}  ${c}`.trimEnd();
  return [
    line(head.label, head.text.padStart(w1), head.injected),
    ...all.map((x) =>
      line(
        x.label,
        typeof x.json === "number" ? x.text.padStart(w1) : x.text,
        x.injected === undefined ? "" : String(x.injected),
      )
    ),
  ].join("\n");
}
