/**
 * The session report as one self-contained HTML file: inline CSS and SVG, no script, nothing
 * fetched from anywhere. Four lanes share the time axis (seconds since the request):
 *
 * 1. arrival lateness — each received packet at its one-way delay relative to the fastest one
 *    (ms), reordered packets and duplicates marked;
 * 2. losses — one red tick (`class="lost"`) per packet that never came, at the time its
 *    neighbour arrived; concealed gaps (`class="gap"`) and packets too late to play
 *    (`class="late"`);
 * 3. interarrival jitter (RFC 3550 §6.4.1, ms) as it evolved;
 * 4. jitter buffer level (ms of audio waiting) with underruns (`class="underrun"`).
 *
 * Then the statistics table (the rows of `--stats-json`, same names).
 *
 * @module
 */

import type { SessionTimeline } from "./timeline.ts";

/** What the report shows besides the timeline. */
export interface ReportInput {
  /** Heading, e.g. `udp-client localhost:9000 --song 1 --sim-loss 10`. */
  title: string;
  /** The statistics (`statsJson` of the reception report). */
  stats: Record<string, unknown>;
  /** First sequence number of the stream (0 on demand; the first received on the radio). */
  base?: number;
  /** Packets expected (the statistics' `expected`). */
  expected: number;
}

const W = 960;
const LEFT = 70;
const RIGHT = 20;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function n(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

interface Lane {
  title: string;
  height: number;
  body: string;
  yMax?: number;
  unit?: string;
}

/** Renders the report; see the module doc. */
export function renderReport(timeline: SessionTimeline, input: ReportInput): string {
  const arrivals = timeline.arrivals;
  const firstSeq = arrivals.reduce((m, a) => Math.min(m, a.seq), Infinity);
  const base = input.base ?? (Number.isFinite(firstSeq) ? firstSeq : 0);
  const lost = timeline.lostSequences(base, input.expected);
  const tEnd = Math.max(
    1000,
    ...arrivals.map((a) => a.t),
    ...timeline.gaps.map((g) => g.t),
    ...timeline.levels.map((l) => l.t),
  );
  const plotW = W - LEFT - RIGHT;
  const x = (t: number) => LEFT + (Math.max(0, t) / tEnd) * plotW;

  // Lateness: transit time minus the smallest one.
  const unique = arrivals.filter((a) => a.kind !== "duplicate");
  const transit = unique.map((a) => a.t - a.tsUs / 1000);
  const minTransit = transit.length ? Math.min(...transit) : 0;
  const lateness = transit.map((v) => v - minTransit);
  const lateMax = Math.max(10, ...lateness);
  const h1 = 160;
  const y1 = (ms: number) => h1 - 4 - (ms / lateMax) * (h1 - 12);
  let okPath = "";
  const marks: string[] = [];
  unique.forEach((a, i) => {
    const px = x(a.t);
    const py = y1(lateness[i]!);
    if (a.kind === "reordered") {
      marks.push(`<circle class="reordered" cx="${n(px)}" cy="${n(py)}" r="3"/>`);
    } else okPath += `M${n(px)} ${n(py)}h1.5`;
  });
  // A duplicate is drawn at the lateness of its first copy's transit (its own arrival time).
  for (const a of arrivals) {
    if (a.kind !== "duplicate") continue;
    const py = y1(Math.max(0, a.t - a.tsUs / 1000 - minTransit));
    marks.push(
      `<rect class="duplicate" x="${n(x(a.t) - 2.5)}" y="${n(py - 2.5)}" width="5" height="5"/>`,
    );
  }
  const laneArrivals: Lane = {
    title: "Arrival lateness (ms behind the fastest packet)",
    height: h1,
    yMax: lateMax,
    unit: "ms",
    body: `<path class="arrival" d="${okPath}"/>${marks.join("")}`,
  };

  // Losses: at the arrival time of the nearest received packet before (else after) it.
  const bySeq = unique.map((a) => ({ seq: a.seq, t: a.t })).sort((a, b) => a.seq - b.seq);
  const lostMarks: string[] = [];
  let j = 0;
  for (const s of lost) {
    while (j + 1 < bySeq.length && bySeq[j + 1]!.seq < s) j++;
    const near = bySeq[j] && bySeq[j]!.seq < s ? bySeq[j]! : bySeq[j] ?? { t: 0 };
    const px = n(x(near.t));
    lostMarks.push(
      `<line class="lost" x1="${px}" x2="${px}" y1="4" y2="26"><title>lost ${s}</title></line>`,
    );
  }
  const gapMarks = timeline.gaps.map((g) =>
    `<rect class="gap" x="${
      n(x(g.t) - 1)
    }" y="28" width="3" height="10"><title>concealed ${g.from}..${g.to - 1}</title></rect>`
  );
  const lateMarks = timeline.late.map((l) =>
    `<line class="late" x1="${n(x(l.t))}" x2="${
      n(x(l.t))
    }" y1="40" y2="52"><title>late ${l.seq}</title></line>`
  );
  const laneLoss: Lane = {
    title: `Losses (${lost.length} lost, red) · concealed gaps (${timeline.gaps.length}, grey) · ` +
      `too late to play (${timeline.late.length}, orange)`,
    height: 56,
    body: lostMarks.join("") + gapMarks.join("") + lateMarks.join(""),
  };

  // Jitter, RFC 3550, in arrival order.
  const jitter: { t: number; j: number }[] = [];
  let J = 0;
  let prev: number | undefined;
  for (let i = 0; i < unique.length; i++) {
    if (prev !== undefined) J += (Math.abs(transit[i]! - prev) - J) / 16;
    prev = transit[i]!;
    jitter.push({ t: unique[i]!.t, j: J });
  }
  const jMax = Math.max(1, ...jitter.map((p) => p.j));
  const h3 = 100;
  const laneJitter: Lane = {
    title: "Interarrival jitter (RFC 3550, ms)",
    height: h3,
    yMax: jMax,
    unit: "ms",
    body: `<polyline class="jitter" points="${
      decimate(jitter, plotW).map((p) => `${n(x(p.t))},${n(h3 - 4 - (p.j / jMax) * (h3 - 12))}`)
        .join(" ")
    }"/>`,
  };

  const levels = timeline.levels;
  const bMax = Math.max(10, ...levels.map((l) => l.bufferedMs));
  const h4 = 100;
  const under: string[] = [];
  for (let i = 0; i < levels.length; i++) {
    const before = i === 0 ? 0 : levels[i - 1]!.underruns;
    if (levels[i]!.underruns > before) {
      const px = n(x(levels[i]!.t));
      under.push(`<line class="underrun" x1="${px}" x2="${px}" y1="4" y2="${h4 - 4}"/>`);
    }
  }
  const laneBuffer: Lane = {
    title: "Jitter buffer level (ms of audio waiting) · underruns (purple)",
    height: h4,
    yMax: bMax,
    unit: "ms",
    body: `<polyline class="level" points="${
      decimate(levels.map((l) => ({ t: l.t, j: l.bufferedMs })), plotW)
        .map((p) => `${n(x(p.t))},${n(h4 - 4 - (p.j / bMax) * (h4 - 12))}`).join(" ")
    }"/>${under.join("")}`,
  };

  const lanes = [laneArrivals, laneLoss, laneJitter, laneBuffer];
  let y = 0;
  const parts: string[] = [];
  for (const lane of lanes) {
    y += 22;
    parts.push(`<text class="lane" x="${LEFT}" y="${y - 6}">${esc(lane.title)}</text>`);
    parts.push(
      `<g transform="translate(0 ${y})"><rect class="frame" x="${LEFT}" y="0" width="${plotW}" height="${lane.height}"/>`,
    );
    if (lane.yMax !== undefined) {
      parts.push(
        `<text class="tick" x="${LEFT - 6}" y="12" text-anchor="end">${n(lane.yMax)} ${
          lane.unit ?? ""
        }</text><text class="tick" x="${LEFT - 6}" y="${
          lane.height - 2
        }" text-anchor="end">0</text>`,
      );
    }
    parts.push(lane.body, "</g>");
    y += lane.height;
  }
  // Time axis.
  y += 4;
  const step = niceStep(tEnd / 1000);
  for (let s = 0; s <= tEnd / 1000 + 1e-9; s += step) {
    const px = n(x(s * 1000));
    parts.push(
      `<line class="grid" x1="${px}" x2="${px}" y1="0" y2="${y}"/><text class="tick" x="${px}" y="${
        y + 14
      }" text-anchor="middle">${n(s)} s</text>`,
    );
  }
  const svgHeight = y + 24;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${svgHeight}" width="${W}" height="${svgHeight}" role="img" aria-label="session timeline">${
      parts.join("")
    }</svg>`;

  const rows = Object.entries(input.stats).filter(([k]) => k !== "injected");
  const injected = (input.stats.injected ?? {}) as Record<string, number>;
  const injectedFor: Record<string, number | undefined> = {
    lost: injected.dropped,
    duplicated: injected.duplicated,
    reordered: injected.reordered,
  };
  const hasInjected = input.stats.injected !== undefined;
  const table = `<table><thead><tr><th></th><th>observed</th>${
    hasInjected ? "<th>injected</th>" : ""
  }</tr></thead><tbody>${
    rows.map(([k, v]) =>
      `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td>${
        hasInjected ? `<td>${injectedFor[k] === undefined ? "" : injectedFor[k]}</td>` : ""
      }</tr>`
    ).join("")
  }</tbody></table>`;
  const note = timeline.truncated.size > 0
    ? `<p class="note">The record is truncated (${
      esc([...timeline.truncated].join(", "))
    } reached the limit); later events are not drawn.</p>`
    : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${esc(input.title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem; color: #222; }
h1 { font-size: 1.2rem; }
.frame { fill: #fafafa; stroke: #bbb; }
.grid { stroke: #e4e4e4; }
.tick { font-size: 11px; fill: #555; }
.lane { font-size: 12px; font-weight: 600; fill: #222; }
.arrival { stroke: #1f5fbf; stroke-width: 2; fill: none; }
.reordered { fill: #e07b00; }
.duplicate { fill: #8a2be2; }
.lost { stroke: #d00000; stroke-width: 1.5; }
.gap { fill: #888; }
.late { stroke: #e07b00; stroke-width: 1.5; }
.jitter { stroke: #0a8a3a; stroke-width: 1.5; fill: none; }
.level { stroke: #1f5fbf; stroke-width: 1.5; fill: none; }
.underrun { stroke: #8a2be2; stroke-width: 1; }
table { border-collapse: collapse; margin-top: 1rem; }
th, td { text-align: left; padding: .15rem .6rem; border-bottom: 1px solid #ddd; }
td { font-variant-numeric: tabular-nums; }
.note { color: #a40000; }
</style></head>
<body>
<h1>${esc(input.title)}</h1>
<p>${arrivals.length} arrivals, ${lost.length} lost, ${timeline.gaps.length} concealed gaps, ${timeline.late.length} late, over ${
    n(tEnd / 1000)
  } s.</p>
${svg}
${note}
<h2>Statistics</h2>
${table}
</body></html>
`;
}

/** At most about two points per pixel column (the last point of each column kept). */
function decimate(points: { t: number; j: number }[], columns: number): { t: number; j: number }[] {
  if (points.length <= columns * 2) return points;
  const tEnd = points[points.length - 1]!.t || 1;
  const out: { t: number; j: number }[] = [];
  let col = -1;
  for (const p of points) {
    const c = Math.floor((p.t / tEnd) * columns * 2);
    if (c !== col) {
      out.push(p);
      col = c;
    } else out[out.length - 1] = p;
  }
  return out;
}

function niceStep(seconds: number): number {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]) {
    if (seconds / s <= 12) return s;
  }
  return 7200;
}
