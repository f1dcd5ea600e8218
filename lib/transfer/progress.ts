/**
 * Human text for a transfer: sizes, the offer summary, and the TTY progress line
 * (`12.0 MiB / 200 MiB  6%  85.3 MiB/s  ETA 0:02`).
 *
 * @module
 */

import type { Offer } from "./manifest.ts";

/** `1.5 MiB`, `200 B`, `3.2 GiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** `3 files, 1 folder, 1.0 MiB`. */
export function describeOffer(offer: Offer): string {
  const files = offer.entries.filter((e) => e.type === "file").length;
  const dirs = offer.entries.length - files;
  const parts = [`${files} file${files === 1 ? "" : "s"}`];
  if (dirs > 0) parts.push(`${dirs} folder${dirs === 1 ? "" : "s"}`);
  parts.push(formatBytes(offer.totalBytes));
  return parts.join(", ");
}

/** Draws progress lines at most every `intervalMs`, with rate and ETA from the start. */
export class ProgressMeter {
  #start = performance.now();
  #startDone: number | undefined;
  #last = 0;
  readonly #draw: (line: string) => void;
  readonly #intervalMs: number;

  constructor(draw: (line: string) => void, intervalMs = 200) {
    this.#draw = draw;
    this.#intervalMs = intervalMs;
  }

  /** Reports `done` of `total` bytes; draws when the interval passed or it is complete. */
  update(done: number, total: number): void {
    const now = performance.now();
    this.#startDone ??= done;
    if (now - this.#last < this.#intervalMs && done < total) return;
    this.#last = now;
    this.#draw(progressLine(done, total, (now - this.#start) / 1000, done - this.#startDone));
  }
}

/** The progress line for `done` of `total` after `seconds`, `moved` of it this session. */
export function progressLine(done: number, total: number, seconds: number, moved: number): string {
  const rate = seconds > 0 ? moved / seconds : 0;
  const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
  const left = rate > 0 ? Math.ceil((total - done) / rate) : undefined;
  const eta = left === undefined
    ? "ETA -:--"
    : `ETA ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  return `${formatBytes(done)} / ${formatBytes(total)}  ${pct}%  ${formatBytes(rate)}/s  ${eta}`;
}
