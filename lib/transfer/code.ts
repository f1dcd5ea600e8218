/**
 * One-time codes: three words from {@linkcode WORDS} (2048 words, 33 bits), e.g.
 * `velvet-ocean-trip`. Typing is forgiving: any case, spaces or hyphens between words, and
 * each word may be cut to its first four letters (unique in the list).
 *
 * @module
 */

import { WORDS } from "./words.ts";

/** Words in a code. */
export const CODE_WORDS = 3;

const exact = new Set(WORDS);
const byPrefix = new Map<string, string>(WORDS.map((w) => [w.slice(0, 4), w]));

/** A code that is not three words of the list. */
export class CodeFormatError extends TypeError {
  override name = "CodeFormatError";
}

/** A random code (crypto-random, 3 × 11 bits). */
export function generateCode(): string {
  const picks = crypto.getRandomValues(new Uint16Array(CODE_WORDS));
  return Array.from(picks, (n) => WORDS[n % WORDS.length]!).join("-");
}

/**
 * The canonical form of a typed code: lowercase full words joined by `-`.
 *
 * @throws {CodeFormatError} when it is not three known words (the message says which).
 */
export function normalizeCode(text: string): string {
  const parts = text.trim().toLowerCase().split(/[\s-]+/).filter((p) => p !== "");
  if (parts.length !== CODE_WORDS) {
    throw new CodeFormatError(
      `a code is ${CODE_WORDS} words like "velvet-ocean-trip", not "${text}"`,
    );
  }
  return parts.map((p) => {
    const word = exact.has(p) ? p : p.length >= 4 ? byPrefix.get(p.slice(0, 4)) : undefined;
    if (!word || !word.startsWith(p)) {
      throw new CodeFormatError(`"${p}" is not a word of the code list`);
    }
    return word;
  }).join("-");
}
