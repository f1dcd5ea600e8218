/**
 * The window counts of the TLS stream listeners that bench/tls_fanout.ts and
 * bench/web_stream.ts run in their `--role listeners` processes.
 *
 * @module
 */

/** One stream listener, as its role process counts it. */
export interface StreamListener {
  conn?: Deno.TlsConn;
  /** Connected, answered and receiving. */
  joined: boolean;
  /** Why it could not join ("" if it did). */
  failed: string;
  /** Why it ended after joining ("" while it runs). */
  ended: string;
  /** Bytes received inside the window. */
  windowBytes: number;
}

/** What both benchmarks report of a window. */
export interface StreamWindow {
  listeners: number;
  /** Connected, answered (ACCEPT / HTTP 200) and receiving. */
  joined: number;
  /** Join failures (connect or handshake error, REJECT, not 200). */
  joinFailed: number;
  /** Connections that ended (EOF or error) after joining, before the window closed. */
  dropped: number;
  /** A sample reason for a failure, if any. */
  failureSample: string;
  /** The slowest listener's bytes/s inside the window. */
  minBps: number;
  /** The median listener's bytes/s inside the window. */
  medianBps: number;
}

/**
 * The window's report for `ls` over `secs` seconds, with the joined listeners and their
 * bytes/s (ascending) for the caller's own figures.
 */
export function streamWindow<L extends StreamListener>(
  ls: L[],
  secs: number,
): { report: StreamWindow; joined: L[]; bps: number[] } {
  const joined = ls.filter((l) => l.joined);
  const bps = joined.map((l) => l.windowBytes / secs).sort((a, b) => a - b);
  const failed = ls.find((l) => l.failed || l.ended);
  const report: StreamWindow = {
    listeners: ls.length,
    joined: joined.length,
    joinFailed: ls.filter((l) => l.failed).length,
    dropped: ls.filter((l) => l.ended).length,
    failureSample: failed ? failed.failed || failed.ended : "",
    minBps: bps[0] ?? 0,
    medianBps: bps[Math.floor(bps.length / 2)] ?? 0,
  };
  return { report, joined, bps };
}

/** The `quit` command: closes every connection and exits. */
export function closeAndExit(ls: StreamListener[]): never {
  for (const l of ls) {
    try {
      l.conn?.close();
    } catch { /* closed */ }
  }
  Deno.exit(0);
}
