/**
 * Splits a command line typed at a prompt into words the way a POSIX shell does for the simple
 * cases: blanks separate words, `"…"` and `'…'` keep blanks inside one word, a backslash
 * escapes the next character (inside double quotes: only `"` and `\`).
 *
 * @example `splitWords('get "my song" /tmp/')` → `["get", "my song", "/tmp/"]`
 * @module
 */

/** A quote was opened and not closed. */
export class QuoteError extends Error {
  /** @param quote the unclosed quote character. */
  constructor(quote: string) {
    super(`Cannot read the command: unclosed ${quote} quote`);
    this.name = "QuoteError";
  }
}

/**
 * The words of `line`.
 *
 * @throws {QuoteError} for an unclosed quote.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && (line[i + 1] === '"' || line[i + 1] === "\\")) word += line[++i];
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new QuoteError(quote);
  if (inWord) words.push(word);
  return words;
}
