/**
 * Small signal helpers for audio tests: tone generation and tone analysis.
 *
 * @module
 */

/** A sine tone as interleaved 16-bit PCM. */
export function sine(
  hz: number,
  seconds: number,
  rate: number,
  channels = 1,
  amplitude = 16384,
): Int16Array {
  const frames = Math.round(seconds * rate);
  const out = new Int16Array(frames * channels);
  for (let i = 0; i < frames; i++) {
    const v = Math.round(amplitude * Math.sin(2 * Math.PI * hz * i / rate));
    for (let c = 0; c < channels; c++) out[i * channels + c] = v;
  }
  return out;
}

/** What {@linkcode analyseTone} found in a mono recording. */
export interface ToneAnalysis {
  /** First and last sample above the threshold (the tone region). */
  start: number;
  end: number;
  /** Region length in seconds. */
  seconds: number;
  /** Frequency from positive-going zero crossings, Hz. */
  hz: number;
  /** Peak amplitude inside the region. */
  peak: number;
  /** Lowest RMS of any 10 ms window inside the region (a gap shows as ~0). */
  minWindowRms: number;
  /** Highest RMS of any 10 ms window inside the region. */
  maxWindowRms: number;
}

/** Finds the tone region in a mono recording and measures it. Undefined if silent. */
export function analyseTone(
  x: Int16Array,
  rate: number,
  threshold = 2000,
): ToneAnalysis | undefined {
  let start = -1, end = -1;
  for (let i = 0; i < x.length; i++) {
    if (Math.abs(x[i]!) > threshold) {
      if (start < 0) start = i;
      end = i;
    }
  }
  if (start < 0) return undefined;
  let crossings = 0, first = -1, last = -1, peak = 0;
  for (let i = start + 1; i <= end; i++) {
    peak = Math.max(peak, Math.abs(x[i]!));
    if (x[i - 1]! < 0 && x[i]! >= 0) {
      if (first < 0) first = i;
      else crossings++;
      last = i;
    }
  }
  const hz = crossings > 0 ? crossings * rate / (last - first) : 0;
  const win = Math.round(rate / 100);
  let minRms = Infinity, maxRms = 0;
  // Skip one window at each edge: fades of the resampler are not gaps.
  for (let w = start + win; w + 2 * win <= end; w += win) {
    let sum = 0;
    for (let i = w; i < w + win; i++) sum += x[i]! * x[i]!;
    const rms = Math.sqrt(sum / win);
    minRms = Math.min(minRms, rms);
    maxRms = Math.max(maxRms, rms);
  }
  return {
    start,
    end,
    seconds: (end - start) / rate,
    hz,
    peak,
    minWindowRms: minRms,
    maxWindowRms: maxRms,
  };
}
