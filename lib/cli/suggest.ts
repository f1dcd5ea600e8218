/**
 * "Did you mean …?" for names people type: flags, subcommands, song names. The closest known
 * name by edit distance (Damerau–Levenshtein, so one swapped pair of letters counts once),
 * case-insensitively, and only when it is close enough to be a typo rather than another word.
 *
 * @module
 */

/**
 * Edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two
 * adjacent characters, each counting 1 (optimal string alignment).
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  // Three rows are enough: the previous two (for swaps) and the current one.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, before[j - 2]! + 1);
      }
      current[j] = d;
    }
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known name closest to `given` when it looks like a typo of it: at most a third of the
 * longer name's characters differ (at least 1, at most 4), or one is a prefix of the other
 * (`--buf` for `--buffer`). Ties go to the first in `known`. Case is ignored.
 *
 * @returns the name as spelled in `known`, or `undefined` when nothing is close.
 */
export function closestName(given: string, known: Iterable<string>): string | undefined {
  const wanted = given.toLowerCase();
  if (wanted === "") return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const candidate = name.toLowerCase();
    if (candidate === wanted) return name;
    const prefix = wanted.length >= 3 &&
      (candidate.startsWith(wanted) || wanted.startsWith(candidate));
    const distance = prefix ? 0.5 : editDistance(wanted, candidate);
    const allowed = Math.min(
      4,
      Math.max(1, Math.floor(Math.max(wanted.length, candidate.length) / 3)),
    );
    if (distance <= allowed && distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

/** ` (did you mean X?)` for a message, or `""` when nothing is close (see {@linkcode closestName}). */
export function didYouMean(
  given: string,
  known: Iterable<string>,
  show: (name: string) => string = (name) => `"${name}"`,
): string {
  const close = closestName(given, known);
  return close === undefined ? "" : ` (did you mean ${show(close)}?)`;
}
